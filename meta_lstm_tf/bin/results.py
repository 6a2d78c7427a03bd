r"""Runs a named grid of update rules and baselines and writes its report.

    python -m meta_lstm_tf.bin.results --flagfile=configs/results_mini.flags

Every flag of the main job applies to every cell (`--workdir` is the grid
root; `--max_steps` / `--max_train_seconds` are the budget of each update-rule
cell); each cell then replaces the update rule, N and K. Writes
WORKDIR/results.md, results.json and valid_curves.png (see `grid/`).
Rerunning the same command skips finished cells and resumes the others.
With `--update_readme=README.md` the README's block between
`<!-- results:begin -->` and `<!-- results:end -->` is replaced by the report.
"""

import os
import shlex
import sys

from meta_lstm_tf.bin import verbosity

# Before TensorFlow loads: its C++ INFO and WARNING lines off by default.
verbosity.quiet_tensorflow_by_default(sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
from typing import Dict, Sequence

from absl import app
from absl import flags
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf.bin import cli
from meta_lstm_tf.grid import report as grid_report
from meta_lstm_tf.grid import runner as grid_runner
from meta_lstm_tf.grid import spec as grid_spec


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The main job's flags plus the grid's, on `flag_values`."""
  cli.define_flags(flag_values)
  b = baselines.BaselineConfig()

  def define(kind, name, default, help_text, **kwargs):
    getattr(flags, f'DEFINE_{kind}')(name=name, default=default,
                                     help=help_text, flag_values=flag_values,
                                     **kwargs)

  define('enum', 'grid', 'mini', 'Named grid of N-way K-shot settings: '
         + '; '.join(f'{name}: ' + ', '.join(f'{n}w{k}s' for n, k in grid)
                     for name, grid in grid_spec.GRIDS.items()) + '.',
         enum_values=list(grid_spec.GRIDS))
  define('list', 'settings', None,
         'Restrict the grid to these settings (NwKs, e.g. 5w1s).')
  define('list', 'rules', list(grid_spec.RULES),
         'Update rules meta-trained per setting (empty: none).')
  define('list', 'baselines', list(grid_spec.BASELINES),
         'Baselines evaluated per setting (empty: none).')
  define('list', 'setting_flagfiles', [],
         'NwKs:PATH pairs: the cells of setting NwKs start from flagfile PATH '
         '(its budget, queries, learner, ...) instead of the grid\'s flags; '
         'flags given to the grid itself still win.')
  define('list', 'cells', [],
         'Only these update-rule cells, as RULE_NwKs (e.g. meta_lstm_5w5s); '
         'empty: every --rules at every setting.')
  define('list', 'inner_steps_by_shots', [],
         'K:T pairs, e.g. 1:12,5:8 (the paper): T inner steps for K-shot '
         'cells; other cells use --inner_steps.')
  define('integer', 'pretrain_steps', b.pretrain_steps,
         'Baselines: pretraining steps of the all-classes classifier.')
  define('float', 'pretrain_seconds', b.pretrain_seconds,
         'Baselines: pretraining time budget (0: no limit).')
  define('list', 'finetune_learning_rates',
         [repr(v) for v in b.finetune_learning_rates],
         'Baselines: fine-tuning learning rates chosen among on meta-valid.')
  define('list', 'finetune_steps', [str(v) for v in b.finetune_steps],
         'Baselines: fine-tuning step counts chosen among on meta-valid.')
  define('integer', 'selection_episodes', b.selection_episodes,
         'Baselines: meta-valid episodes that choose the fine-tuning '
         'setting.')
  define('string', 'update_readme', None,
         'Also replace the block between <!-- results:begin --> and '
         '<!-- results:end --> of this file with the report.')
  define('string', 'readme_image', None,
         'With --update_readme: copy the plot here and embed it; default: '
         'name the plot\'s path in --workdir without embedding it.')


def _numbers(name, values, kind):
  try:
    return tuple(kind(v) for v in values)
  except ValueError:
    raise ValueError(f'{name}={",".join(values)}: must be a list of '
                     f'{kind.__name__}s') from None


def grid_from_flags(flag_values: flags.FlagValues = flags.FLAGS
                    ) -> grid_spec.GridSpec:
  """The grid the flags name. Raises ValueError naming the flag."""
  f = flag_values
  pairs = []
  for item in f.inner_steps_by_shots:
    try:
      shots, steps = (int(x) for x in item.split(':'))
    except ValueError:
      raise ValueError(f'inner_steps_by_shots={item}: expected K:T, e.g. '
                       '1:12') from None
    pairs.append((shots, steps))
  return grid_spec.make_grid(f.grid, rules=f.rules, baselines=f.baselines,
                               settings=f.settings,
                               inner_steps_by_shots=pairs, cells=f.cells)


def setting_flags_from_flags(argv: Sequence[str],
                             flag_values: flags.FlagValues = flags.FLAGS
                             ) -> Dict[str, flags.FlagValues]:
  """{setting name: its flags}, from --setting_flagfiles.

  A setting's flags are its flagfile read first and then the grid's own
  command line `argv` (so what the grid is given explicitly wins).
  Raises ValueError naming the flag.
  """
  by_setting = {}
  for item in flag_values.setting_flagfiles:
    name, sep, path = item.partition(':')
    if not sep or not path:
      raise ValueError(f'setting_flagfiles={item}: expected NwKs:PATH')
    setting = grid_spec.parse_setting(name)
    if not os.path.isfile(cli.resolve_flagfile(path)):
      raise ValueError(f'setting_flagfiles={item}: no such file {path!r}')
    if setting.name in by_setting:
      raise ValueError(f'setting_flagfiles={item}: {setting.name} is given '
                       'twice')
    own = flags.FlagValues()
    define_flags(own)
    try:
      own(cli.expand_flagfiles([argv[0], f'--flagfile={path}', *argv[1:]]),
          known_only=True)
    except flags.Error as e:
      raise ValueError(f'setting_flagfiles={item}: {e}') from None
    if (own.num_ways, own.num_shots) != tuple(setting):
      raise ValueError(
          f'setting_flagfiles={item}: the file sets --num_ways='
          f'{own.num_ways} --num_shots={own.num_shots}, not {setting.name}')
    by_setting[setting.name] = own
  return by_setting


def baseline_config_from_flags(flag_values: flags.FlagValues = flags.FLAGS):
  """`baselines.BaselineConfig` from the flags, validated."""
  f = flag_values
  return baselines.BaselineConfig(
      pretrain_steps=f.pretrain_steps, pretrain_seconds=f.pretrain_seconds,
      finetune_learning_rates=_numbers('finetune_learning_rates',
                                       f.finetune_learning_rates, float),
      finetune_steps=_numbers('finetune_steps', f.finetune_steps, int),
      selection_episodes=f.selection_episodes, seed=f.seed).validate()


def command_line(argv) -> str:
  """The command as typed, with OMNIGLOT_DIR when the data came from it."""
  command = 'python -m meta_lstm_tf.bin.results ' + shlex.join(argv[1:])
  if flags.FLAGS.omniglot_dir is None and os.environ.get('OMNIGLOT_DIR'):
    command = f'OMNIGLOT_DIR={os.environ["OMNIGLOT_DIR"]} {command}'
  return command


def main(argv):
  cli.configure_threads(flags.FLAGS)
  try:
    config = cli.config_from_flags(flags.FLAGS)
    spec = grid_from_flags(flags.FLAGS)
    baseline_config = baseline_config_from_flags(flags.FLAGS)
    setting_flags = setting_flags_from_flags(sys.argv, flags.FLAGS)
    setting_bases = {name: cli.config_from_flags(own)
                     for name, own in setting_flags.items()}
  except ValueError as e:
    raise app.UsageError(f'bad flag: --{e}') from None
  root = flags.FLAGS.workdir
  if flags.FLAGS.update_readme and not tf.io.gfile.exists(
      flags.FLAGS.update_readme):
    raise app.UsageError(f'--update_readme={flags.FLAGS.update_readme}: no '
                         'such file')
  report = grid_runner.run_grid(
      spec, config, root, baseline_config=baseline_config,
      command=command_line(sys.argv), flags_text=cli.flags_as_text(
          flags.FLAGS), setting_bases=setting_bases,
      setting_flags_texts={name: cli.flags_as_text(own)
                           for name, own in setting_flags.items()})
  if flags.FLAGS.update_readme:
    readme = flags.FLAGS.update_readme
    plot = os.path.join(root, grid_spec.PLOT_FILE)
    if flags.FLAGS.readme_image:
      tf.io.gfile.makedirs(os.path.dirname(os.path.abspath(
          flags.FLAGS.readme_image)))
      # The plot may be in a gs:// grid root.
      tf.io.gfile.copy(plot, flags.FLAGS.readme_image, overwrite=True)
      grid_report.update_readme(readme, report, image=os.path.relpath(
          flags.FLAGS.readme_image,
          os.path.dirname(os.path.abspath(readme))))
    else:
      grid_report.update_readme(readme, report, plot_path=plot)
  print(grid_report.accuracy_table(
      report['rows'], report['rules'] + report['baselines'],
      [grid_spec.Setting(*s) for s in report['settings']]))
  print(f'Report: {os.path.join(root, grid_spec.RESULTS_MD)}')


def run():
  cli.run_binary(main, define_flags, required=('workdir',))


if __name__ == '__main__':
  run()
