"""Command-line flags -> `ExperimentConfig`. The only library module that
imports `absl.flags`.

Flag names equal the config field names, so a validation error
(`field=value: requirement`) names the flag to fix.

The binaries start through `run_binary`: absl's logging at WARNING unless
`--verbosity` says otherwise (`verbosity.py`), and flagfiles read with
`expand_flagfiles`, so `--flagfile=configs/mini.flags` (and the
`--flagfile=configs/base.flags` line inside it) work from any directory:
a `configs/...` path missing from the working directory is read from the
configs installed with the package.
"""

import dataclasses
import os
import sys
from typing import Callable, List, Optional, Sequence

from absl import app
from absl import flags

from meta_lstm_tf.bin import verbosity

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import runtime
from meta_lstm_tf.training import stopping
from meta_lstm_tf.data.omniglot import sources as omniglot_sources


# Where --split=vinyals finds its split files by default, under the local
# Omniglot copy (the layout of ../shared/data/omniglot and of the ProtoNets
# repository's data/omniglot/).
VINYALS_SPLIT_SUBDIR = ('splits', 'vinyals')


# The configs shipped with the package (the repository's configs/, installed
# as meta_lstm_tf/configs/), and how flagfile paths name them.
CONFIGS = 'configs'
_FLAGFILE_FLAGS = ('--flagfile', '-flagfile')


def configs_dir() -> Optional[str]:
  """The installed configs: meta_lstm_tf/configs/ of an installed package,
  else the repository's configs/ beside a source checkout's package; None
  if neither exists."""
  package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for candidate in (os.path.join(package, CONFIGS),
                    os.path.join(os.path.dirname(package), CONFIGS)):
    if os.path.isdir(candidate):
      return candidate
  return None


def resolve_flagfile(path: str) -> str:
  """Where a flagfile path points: `path` itself (relative to the working
  directory) if it exists, else, for `configs/NAME`, the installed config
  NAME (`configs_dir()`) if there is one, else `path` unchanged."""
  path = os.path.expanduser(path)
  if os.path.exists(path) or os.path.isabs(path):
    return path
  parts = os.path.normpath(path).split(os.sep)
  directory = configs_dir()
  if len(parts) > 1 and parts[0] == CONFIGS and directory:
    candidate = os.path.join(directory, *parts[1:])
    if os.path.isfile(candidate):
      return candidate
  return path


def expand_flagfiles(argv: Sequence[str]) -> List[str]:
  """`argv` with every --flagfile replaced by the flags it holds.

  As absl's own flagfile reading (nested --flagfile lines expanded where
  they stand; blank lines and lines starting with # or // skipped; nothing
  after `--`), except that each path goes through `resolve_flagfile`. A
  flagfile that cannot be read is left in place for absl to report.
  """
  expanded = list(argv[:1])
  rest = list(argv[1:])
  while rest:
    arg = rest.pop(0)
    if arg == '--':
      expanded += [arg] + rest
      break
    if arg in _FLAGFILE_FLAGS and rest:
      path = rest.pop(0)
    elif arg.partition('=')[0] in _FLAGFILE_FLAGS and '=' in arg:
      path = arg.partition('=')[2]
    else:
      expanded.append(arg)
      continue
    expanded += _flagfile_lines(path, [])
  return expanded


def _flagfile_lines(path: str, stack: List[str]) -> List[str]:
  """The flags of one flagfile, nested flagfiles expanded."""
  path = path.strip()
  if not path:
    return []  # As absl: an empty --flagfile= is ignored.
  resolved = resolve_flagfile(path)
  if resolved in stack:
    sys.stderr.write('Warning: Hit circular flagfile dependency. Ignoring '
                     f'flagfile: {path}\n')
    return []
  try:
    with open(resolved) as f:
      lines = f.readlines()
  except OSError:
    return [f'--flagfile={path}']  # absl's error names it.
  stack.append(resolved)
  flag_lines = []
  for line in lines:
    if line.isspace() or line.startswith('#') or line.startswith('//'):
      continue
    name, sep, value = line.strip().partition('=')
    if sep and name in _FLAGFILE_FLAGS:
      flag_lines += _flagfile_lines(value, stack)
    else:
      flag_lines.append(line.strip())
  stack.pop()
  return flag_lines


def parse_flags(argv: Sequence[str]) -> List[str]:
  """The binaries' `app.run` flags parser: absl's, after
  `expand_flagfiles`; absl's logging at WARNING unless --verbosity (or -v)
  is given. Returns the arguments left over."""
  args = app.parse_flags_with_usage(expand_flagfiles(argv))
  if not flags.FLAGS['verbosity'].present:
    # Set, not a new default: absl raises a default verbosity to INFO.
    flags.FLAGS.verbosity = verbosity.QUIET_VERBOSITY
  return args


def run_binary(main: Callable[[List[str]], None],
               define: Optional[Callable[[flags.FlagValues], None]] = None,
               required: Sequence[str] = ()) -> None:
  """Runs a binary: defines its flags (`define(flags.FLAGS)`, each binary's
  one `define_flags` function; none is defined at import, so importing a
  binary registers nothing; None: no flags of its own), marks `required`
  ones, then runs `main` with absl, the flags parsed by `parse_flags`.

  The one error handler of every binary: arguments left over after the
  flags are a usage error, and an expected failure (bad config or data, a
  busy workdir, a signal; `stopping.exit_on_error`) ends in one `error:`
  line and a non-zero exit status instead of a traceback.
  """

  def guarded_main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    with stopping.exit_on_error():
      main(argv)

  if define is not None:
    define(flags.FLAGS)
  for name in required:
    flags.mark_flag_as_required(name)
  app.run(guarded_main, flags_parser=parse_flags)


_FLAG_KINDS = {bool: 'bool', int: 'integer', float: 'float', str: 'string'}


def _flag_kind(field) -> str:
  """DEFINE_<kind> for a declared setting: enum with choices, else by its
  type (Optional[X] as X)."""
  if field.metadata['choices']:
    return 'enum'
  kind = getattr(field.type, '__args__', (field.type,))[0]
  return _FLAG_KINDS[kind]


def flag_settings():
  """[(part, field)]: the declared settings that are flags (have help)."""
  return [(part, field) for part, field in config_lib.declared_settings()
          if field.metadata['help']]


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines every flag of the main job on `flag_values`: one per setting
  declared with help in `config.py`, plus the run's own."""
  flags.DEFINE_string(
      'workdir', None, 'Run directory: checkpoints, logs, results.json, '
      'exported SavedModels. Rerunning resumes (a finished run just prints '
      'its results); one process per workdir.', flag_values=flag_values)
  flags.DEFINE_bool(
      'allow_config_change', False,
      'Resume a workdir even though settings that change the numbers '
      'differ from its config.json (recorded in config_changes.json). '
      'Raising --max_steps or --max_train_seconds needs no permission.',
      flag_values=flag_values)
  for _, field in flag_settings():
    kind = _flag_kind(field)
    extra = ({'enum_values': list(field.metadata['choices'])}
             if kind == 'enum' else {})
    getattr(flags, f'DEFINE_{kind}')(
        name=field.name, default=field.metadata.get('flag_default',
                                                    field.default),
        help=field.metadata['help'], flag_values=flag_values, **extra)
  define_thread_flags(flag_values)


def define_thread_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines --intra_op_threads and --inter_op_threads (see `runtime`)."""
  flags.DEFINE_integer(
      'intra_op_threads', runtime.DEFAULT_INTRA_OP_THREADS,
      'Threads per TensorFlow op (0: TensorFlow chooses). One is fastest for '
      'these small ops on CPU (BUILD.md, "Speed").', lower_bound=0,
      flag_values=flag_values)
  flags.DEFINE_integer(
      'inter_op_threads', runtime.DEFAULT_INTER_OP_THREADS,
      'Independent ops run side by side (0: TensorFlow chooses, one per '
      'core).', lower_bound=0, flag_values=flag_values)


def configure_threads(flag_values: flags.FlagValues = flags.FLAGS) -> dict:
  """Applies the thread flags; binaries call it before any TensorFlow work."""
  return runtime.configure_threads(flag_values.intra_op_threads,
                                   flag_values.inter_op_threads)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS
                      ) -> config_lib.ExperimentConfig:
  """Builds and validates the config: every flag setting from its flag,
  the rest at its default, then the values the flags leave to the data
  (`_resolve_data`) and `--bn_momentum=0` as the mean over passes. Raises
  ValueError naming the flag."""
  f = flag_values
  if f.dataset not in config_lib.DATASETS:
    raise ValueError(f'dataset={f.dataset!r}: must be one of '
                     f'{config_lib.DATASETS}')
  values = {}
  for part, field in flag_settings():
    values.setdefault(part, {})[field.name] = f[field.name].value
  values['data'].update(_resolve_data(values['data']))
  inner = values['inner_loop']
  inner['bn_momentum'] = inner['bn_momentum'] or None
  parts = {part.name: part.type(**values.get(part.name, {}))
           for part in dataclasses.fields(config_lib.ExperimentConfig)}
  return config_lib.ExperimentConfig(**parts).validate()


def _resolve_data(data: dict) -> dict:
  """What the data flags leave open: the Omniglot copy ($OMNIGLOT_DIR),
  absolute paths, the data set's image size and channels, the Vinyals
  split files beside the Omniglot copy."""
  dataset = data['dataset']
  omniglot_dir = (omniglot_sources.resolve_omniglot_dir(data['omniglot_dir'])
                  if dataset == 'omniglot' else data['omniglot_dir'])
  default_size, default_channels = config_lib.DATASET_DEFAULTS[dataset]
  split_dir = data['split_dir']
  if split_dir is None and data['split'] == 'vinyals' and omniglot_dir:
    candidate = os.path.join(omniglot_dir, *VINYALS_SPLIT_SUBDIR)
    if os.path.isdir(candidate):
      split_dir = candidate
  return {
      'omniglot_dir': omniglot_dir,
      'data_root': (os.path.abspath(os.path.expanduser(data['data_root']))
                    if data['data_root'] else None),
      'image_size': (default_size if data['image_size'] is None
                     else data['image_size']),
      'channels': (default_channels if data['channels'] is None
                   else data['channels']),
      'split_dir': split_dir,
  }


def flags_as_text(flag_values: flags.FlagValues = flags.FLAGS) -> str:
  """The flags of this module's definitions, as a --flagfile."""
  names = sorted(_own_flag_names(flag_values))
  return ''.join(f'--{n}={flag_values[n].value}\n' for n in names
                 if flag_values[n].value is not None)


def _own_flag_names(flag_values):
  probe = flags.FlagValues()
  define_flags(probe)
  return [name for name in probe if name in flag_values]
