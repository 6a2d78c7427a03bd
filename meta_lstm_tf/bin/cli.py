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


def run_binary(main: Callable[[List[str]], None]) -> None:
  """Runs a binary's `main` with absl, its flags parsed by `parse_flags`.

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

  app.run(guarded_main, flags_parser=parse_flags)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines every flag of the main job on `flag_values`."""
  d = config_lib.ExperimentConfig()

  def define(kind, name, default, help_text, **kwargs):
    getattr(flags, f'DEFINE_{kind}')(name=name, default=default,
                                     help=help_text, flag_values=flag_values,
                                     **kwargs)

  define('string', 'workdir', None, 'Run directory: checkpoints, logs, '
         'results.json, exported SavedModels. Rerunning resumes (a finished '
         'run just prints its results); one process per workdir.')
  define('bool', 'allow_config_change', False,
         'Resume a workdir even though settings that change the numbers '
         'differ from its config.json (recorded in config_changes.json). '
         'Raising --max_steps or --max_train_seconds needs no permission.')
  # Data.
  define('enum', 'dataset', d.data.dataset,
         'Data set: omniglot (TFDS, or --omniglot_dir), mini_imagenet '
         '(Ravi & Larochelle\'s split, a local copy in --data_root) or '
         'image_folder (--data_root/{train,val,test}/CLASS/*.png|jpg).',
         enum_values=list(config_lib.DATASETS))
  define('string', 'data_root', None,
         'Local copy of --dataset=mini_imagenet (images/ and train.csv, '
         'val.csv, test.csv; or train/CLASS/*.jpg, val/, test/) or '
         'image_folder. Never downloaded.')
  define('integer', 'channels', None,
         'Image channels: 1 (gray) or 3 (RGB); default the data set\'s '
         '(omniglot 1, mini_imagenet and image_folder 3).')
  define('string', 'omniglot_dir', None,
         'Local copy of Omniglot (archives and/or extracted folders); default '
         '$OMNIGLOT_DIR, else TFDS downloads it.')
  define('string', 'data_dir', None, 'TFDS data directory.')
  define('enum', 'split', d.data.split, 'Class split protocol.',
         enum_values=list(config_lib.SPLITS))
  define('string', 'split_dir', None,
         'Directory with train.txt/val.txt/test.txt (split=vinyals); '
         'default: splits/vinyals/ of the local Omniglot copy '
         '(--omniglot_dir or $OMNIGLOT_DIR), where there is one.')
  define('enum', 'minimal_subset', d.data.minimal_subset,
         'Background subset for split=minimal.',
         enum_values=list(config_lib.MINIMAL_SUBSETS))
  define('bool', 'rotations', d.data.rotations,
         'Add 90/180/270 degree rotations of meta-train classes as classes.')
  define('integer', 'image_size', None,
         'Image side in pixels; default the data set\'s (omniglot 28, '
         'mini_imagenet and image_folder 84).')
  # Episodes.
  define('integer', 'num_ways', d.episode.num_ways, 'N classes per episode.')
  define('integer', 'num_shots', d.episode.num_shots,
         'K support examples per class.')
  define('integer', 'num_queries', d.episode.num_queries,
         'Q query examples per class.')
  define('enum', 'episode_classes', d.episode.episode_classes,
         'any: N classes from all of the pool; within_alphabet: all N from '
         'one Omniglot alphabet (Lake et al.\'s one-shot runs).',
         enum_values=list(config_lib.EPISODE_CLASSES))
  define('bool', 'distinct_drawers', d.episode.distinct_drawers,
         'Omniglot: support and query drawings of a class by different '
         'people (K support drawers, Q others, per episode; Lake et al.). '
         'Needs a local copy (--omniglot_dir).')
  define('bool', 'augment', d.episode.augment,
         'Meta-train episodes only: rotate (up to 10 degrees), zoom '
         '(0.9-1.1x) and shift (up to a tenth of the side) every image at '
         'random. Evaluation is never augmented.')
  # Learner.
  define('integer', 'num_filters', d.learner.num_filters,
         'Filters per conv block of the learner.')
  define('integer', 'num_blocks', d.learner.num_blocks,
         'Conv blocks of the learner.')
  # Meta-learner and inner loop.
  define('enum', 'update_rule', d.meta_learner.update_rule,
         'Inner-loop update rule: meta_lstm (Ravi & Larochelle), sgd (MAML: '
         'fixed --inner_lr, learned init) or meta_sgd (learned per-coordinate '
         'rates and init).', enum_values=list(config_lib.UPDATE_RULES))
  define('float', 'inner_lr', d.meta_learner.inner_lr,
         'Learning rate of update_rule=sgd; initial rates of meta_sgd; '
         'initial input gate of meta_lstm with --gate_init=inner_lr.')
  define('enum', 'gate_init', d.meta_learner.gate_init,
         'Meta-LSTM gate biases at initialisation: inner_lr (input gate = '
         '--inner_lr, forget gate = --forget_gate_init) or paper (the '
         "original code's U(-5,-4) input and U(4,5) forget biases).",
         enum_values=list(config_lib.GATE_INITS))
  define('enum', 'gate_bias', d.meta_learner.gate_bias,
         'Meta-LSTM gate biases: shared (the paper), per_tensor (one per '
         'learner tensor) or per_coordinate.',
         enum_values=list(config_lib.GATE_BIASES))
  define('float', 'gate_bias_scale', d.meta_learner.gate_bias_scale,
         'Meta-LSTM gate biases are this times their variables: the '
         'meta-optimizer moves them this much faster (1: plain biases).')
  define('float', 'forget_gate_init', d.meta_learner.forget_gate_init,
         'Initial forget gate of the meta-LSTM with --gate_init=inner_lr.')
  define('integer', 'hidden_size', d.meta_learner.hidden_size,
         'Hidden units of the meta-LSTM first layer.')
  define('integer', 'inner_steps', d.inner_loop.inner_steps,
         'T meta-LSTM updates per episode (paper: 12 for 1-shot, 8 for 5).')
  define('bool', 'second_order', d.inner_loop.second_order,
         'Exact second-order meta-gradients (default first order, as the '
         'paper).')
  define('bool', 'transductive', d.inner_loop.transductive,
         'Evaluate with query-batch BN statistics (default: support '
         'statistics).')
  define('float', 'bn_momentum', d.inner_loop.bn_momentum,
         'How support passes fold into the running BN statistics: 1 keeps '
         'the last pass (at theta_T), 0 averages all passes.')
  define('enum', 'train_query_stats', d.inner_loop.train_query_stats,
         'BN statistics of the query pass in meta-training: batch (original '
         'code) or support (as at evaluation).',
         enum_values=['batch', 'support'])
  define('enum', 'conv_dtype', d.inner_loop.conv_dtype,
         "Precision of the learner's convolutions in first-order passes: "
         'float32, bfloat16, or auto (bfloat16 on CPUs with AVX512-BF16 or '
         'AMX). Exports always run float32.',
         enum_values=list(config_lib.CONV_DTYPES))
  # Training.
  t = d.train
  define('float', 'learning_rate', t.learning_rate,
         'Adam learning rate (the initial one under --lr_schedule=cosine).')
  define('enum', 'lr_schedule', t.lr_schedule,
         'constant, or cosine: from --learning_rate to --final_learning_rate '
         'over the run (by the larger of its step and time fractions).',
         enum_values=list(config_lib.LR_SCHEDULES))
  define('float', 'final_learning_rate', t.final_learning_rate,
         'Where --lr_schedule=cosine ends.')
  define('float', 'clip_norm', t.clip_norm,
         'Global-norm clipping of meta-gradients (0: off).')
  define('integer', 'meta_batch_size', t.meta_batch_size,
         'Episodes per meta-train step.')
  define('integer', 'max_steps', t.max_steps, 'Meta-train steps.')
  define('float', 'max_train_seconds', t.max_train_seconds,
         'Stop meta-training after this many seconds (0: no limit); the '
         'time spent is kept across resumes.')
  define('integer', 'eval_every', t.eval_every,
         'Validate every this many steps.')
  define('integer', 'eval_episodes', t.eval_episodes,
         'Fixed validation episodes.')
  define('integer', 'test_episodes', t.test_episodes,
         'Final test episodes (meta-test classes).')
  define('integer', 'checkpoint_every', t.checkpoint_every,
         'Checkpoint every this many steps.')
  define('integer', 'keep_checkpoints', t.keep_checkpoints,
         'Checkpoints kept.')
  define('integer', 'log_every', t.log_every,
         'Write TensorBoard summaries every this many steps.')
  define('integer', 'seed', t.seed, 'Seed of initialisation and episodes.')
  define('bool', 'deterministic', t.deterministic,
         'TF op determinism: a resumed run reproduces an uninterrupted one.')
  define('bool', 'jit_compile', t.jit_compile,
         'XLA-compile the train and eval steps (for GPUs; off on CPU).')
  define('enum', 'strategy', t.strategy,
         'tf.distribute strategy splitting each meta-batch across replicas: '
         'default (one device), mirrored (all local GPUs), multi_worker '
         '(the machines of TF_CONFIG), tpu. --meta_batch_size must be a '
         'multiple of the replicas.', enum_values=list(config_lib.STRATEGIES))
  define('string', 'tpu_address', t.tpu_address,
         'TPU name or grpc:// address for --strategy=tpu (default: the '
         'local TPU).')
  define('enum', 'init_from', t.init_from,
         'Where theta_0 starts: scratch (random init) or pretrained (first '
         'train the learner as a classifier over all meta-train classes for '
         '--init_pretrain_seconds; that time counts towards '
         '--max_train_seconds).', enum_values=list(config_lib.INIT_FROM))
  define('float', 'init_pretrain_seconds', t.init_pretrain_seconds,
         'Pretraining time of --init_from=pretrained (0: no limit).')
  define('integer', 'init_pretrain_steps', t.init_pretrain_steps,
         'Pretraining steps (batches) of --init_from=pretrained.')
  define('integer', 'init_pretrain_batch_size', t.init_pretrain_batch_size,
         'Pretraining batch size of --init_from=pretrained.')
  define('bool', 'quiet', t.quiet, 'No progress bar; a log line per eval.')
  define_thread_flags(flag_values)
  define('bool', 'export', t.export,
         'Export the best model as a SavedModel at the end.')


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
  """Builds and validates the config. Raises ValueError naming the flag."""
  f = flag_values
  if f.dataset not in config_lib.DATASETS:
    raise ValueError(f'dataset={f.dataset!r}: must be one of '
                     f'{config_lib.DATASETS}')
  omniglot_dir = (omniglot_sources.resolve_omniglot_dir(f.omniglot_dir)
                  if f.dataset == 'omniglot' else f.omniglot_dir)
  data_root = (os.path.abspath(os.path.expanduser(f.data_root))
               if f.data_root else None)
  default_size, default_channels = config_lib.DATASET_DEFAULTS[f.dataset]
  image_size = default_size if f.image_size is None else f.image_size
  split_dir = f.split_dir
  if split_dir is None and f.split == 'vinyals' and omniglot_dir:
    candidate = os.path.join(omniglot_dir, *VINYALS_SPLIT_SUBDIR)
    if os.path.isdir(candidate):
      split_dir = candidate
  channels = default_channels if f.channels is None else f.channels
  config = config_lib.ExperimentConfig(
      data=config_lib.DataConfig(
          dataset=f.dataset, data_root=data_root, channels=channels,
          omniglot_dir=omniglot_dir, data_dir=f.data_dir, split=f.split,
          split_dir=split_dir, minimal_subset=f.minimal_subset,
          rotations=f.rotations, image_size=image_size),
      episode=config_lib.EpisodeConfig(
          f.num_ways, f.num_shots, f.num_queries,
          episode_classes=f.episode_classes,
          distinct_drawers=f.distinct_drawers, augment=f.augment),
      learner=config_lib.LearnerConfig(
          num_ways=f.num_ways, num_filters=f.num_filters,
          num_blocks=f.num_blocks, image_size=image_size,
          channels=channels),
      meta_learner=config_lib.MetaLearnerConfig(
          update_rule=f.update_rule, inner_lr=f.inner_lr,
          gate_init=f.gate_init, forget_gate_init=f.forget_gate_init,
          gate_bias=f.gate_bias, gate_bias_scale=f.gate_bias_scale,
          hidden_size=f.hidden_size),
      inner_loop=config_lib.InnerLoopConfig(
          inner_steps=f.inner_steps, second_order=f.second_order,
          transductive=f.transductive,
          bn_momentum=f.bn_momentum if f.bn_momentum else None,
          train_query_stats=f.train_query_stats,
          conv_dtype=f.conv_dtype),
      train=config_lib.TrainConfig(
          learning_rate=f.learning_rate, lr_schedule=f.lr_schedule,
          final_learning_rate=f.final_learning_rate, clip_norm=f.clip_norm,
          meta_batch_size=f.meta_batch_size, max_steps=f.max_steps,
          eval_every=f.eval_every, eval_episodes=f.eval_episodes,
          test_episodes=f.test_episodes,
          checkpoint_every=f.checkpoint_every,
          keep_checkpoints=f.keep_checkpoints, log_every=f.log_every,
          seed=f.seed, deterministic=f.deterministic,
          jit_compile=f.jit_compile, max_train_seconds=f.max_train_seconds,
          quiet=f.quiet, export=f.export, strategy=f.strategy,
          tpu_address=f.tpu_address, init_from=f.init_from,
          init_pretrain_seconds=f.init_pretrain_seconds,
          init_pretrain_steps=f.init_pretrain_steps,
          init_pretrain_batch_size=f.init_pretrain_batch_size))
  return config.validate()


def flags_as_text(flag_values: flags.FlagValues = flags.FLAGS) -> str:
  """The flags of this module's definitions, as a --flagfile."""
  names = sorted(_own_flag_names(flag_values))
  return ''.join(f'--{n}={flag_values[n].value}\n' for n in names
                 if flag_values[n].value is not None)


def _own_flag_names(flag_values):
  probe = flags.FlagValues()
  define_flags(probe)
  return [name for name in probe if name in flag_values]
