"""A named grid of runs (update rules and baselines x N-way K-shot settings)
and its report: results.md, results.json and a plot of validation curves.

Layout of a grid root (ROOT):

    ROOT/<rule>_<N>w<K>s/        one `train_lib.train_and_evaluate` workdir per
                                 update rule and setting (see `workdir.py`)
    ROOT/pretrain/               the baselines' one pretraining on all
                                 meta-train classes (`baselines_lib.pretrain`)
    ROOT/baselines_<N>w<K>s.json the baselines' results for one setting
    ROOT/results.md              the report: tables, command, budget, machine
    ROOT/results.json            every raw number of the report
    ROOT/valid_curves.png        validation accuracy against training time

Every cell of one setting is tested on the same fixed meta-test episodes
(`evaluation.TEST_SEED`), so the rows of a column are directly comparable.
Rerunning the same command skips finished cells and resumes unfinished ones.

Shape glossary: N ways, K shots, T inner steps.
"""

import dataclasses
import datetime
import json
import os
import platform
import re
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from meta_lstm_tf import baselines_lib
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import train_lib
from meta_lstm_tf import workdir as workdir_lib
from meta_lstm_tf.data import splits

# Named grids: the (N ways, K shots) settings they cover.
GRIDS = {
    'mini': ((5, 1), (5, 5)),
    'paper': ((5, 1), (5, 5), (20, 1), (20, 5)),
    # Ravi & Larochelle's Table 1 on mini-ImageNet (--dataset=mini_imagenet).
    'mini_imagenet': ((5, 1), (5, 5)),
}
# Grids that only make sense on one data set.
GRID_DATASETS = {'mini_imagenet': 'mini_imagenet'}
RULES = config_lib.UPDATE_RULES
BASELINES = ('finetune', 'nearest_neighbour')
METHOD_NAMES = {
    'meta_lstm': 'Meta-learner LSTM',
    'sgd': 'SGD from a learned init (MAML)',
    'meta_sgd': 'Meta-SGD',
    'finetune': 'Baseline: fine-tune',
    'nearest_neighbour': 'Baseline: nearest neighbour',
}

RESULTS_MD = 'results.md'
RESULTS_JSON = 'results.json'
PLOT_FILE = 'valid_curves.png'
PRETRAIN_DIR = 'pretrain'
# The method every other is compared with, episode by episode.
PAIRED_REFERENCE = 'meta_lstm'
README_BEGIN = '<!-- results:begin -->'
README_END = '<!-- results:end -->'

# Train settings that change neither the numbers nor the budget of a run: a
# finished cell that differs from the requested config only in these counts
# as done.
_IRRELEVANT_TRAIN_FIELDS = ('quiet', 'export', 'checkpoint_every',
                            'keep_checkpoints', 'log_every', 'jit_compile')


class Setting(NamedTuple):
  """One column of the table: N-way K-shot."""
  num_ways: int
  num_shots: int

  @property
  def name(self) -> str:
    return f'{self.num_ways}w{self.num_shots}s'

  @property
  def title(self) -> str:
    return f'{self.num_ways}-way {self.num_shots}-shot'


@dataclasses.dataclass(frozen=True)
class GridSpec:
  """What a grid runs.

  Attributes:
    name: the grid's name (a key of `GRIDS`, or any label).
    settings: the (N, K) settings, in table order.
    rules: update rules (`config.UPDATE_RULES`) meta-trained per setting.
    baselines: baselines (`BASELINES`) evaluated per setting.
    inner_steps_by_shots: ((K, T), ...): T inner steps for K-shot cells;
      shots not listed keep the base config's `inner_steps`.
  """
  name: str
  settings: Tuple[Setting, ...]
  rules: Tuple[str, ...] = RULES
  baselines: Tuple[str, ...] = BASELINES
  inner_steps_by_shots: Tuple[Tuple[int, int], ...] = ()

  def validate(self) -> 'GridSpec':
    if not self.settings:
      raise ValueError(f'settings={self.settings!r}: the grid is empty')
    for setting in self.settings:
      if setting.num_ways < 2 or setting.num_shots < 1:
        raise ValueError(f'settings: {setting.name} is not a valid setting')
    for rule in self.rules:
      if rule not in RULES:
        raise ValueError(f'rules: {rule!r} must be one of {RULES}')
    for baseline in self.baselines:
      if baseline not in BASELINES:
        raise ValueError(f'baselines: {baseline!r} must be one of '
                         f'{BASELINES}')
    if not self.rules and not self.baselines:
      raise ValueError('rules and baselines are both empty: nothing to run')
    for shots, steps in self.inner_steps_by_shots:
      if shots < 1 or steps < 1:
        raise ValueError(f'inner_steps_by_shots: {shots}:{steps} must be '
                         'positive')
    return self

  def inner_steps(self, num_shots: int, default: int) -> int:
    return dict(self.inner_steps_by_shots).get(num_shots, default)


def parse_setting(text: str) -> Setting:
  """'5w1s' -> Setting(5, 1)."""
  match = re.fullmatch(r'(\d+)w(\d+)s', text.strip())
  if not match:
    raise ValueError(f'setting {text!r}: expected NwKs, e.g. 5w1s')
  return Setting(int(match.group(1)), int(match.group(2)))


def make_grid(name: str, rules: Optional[Sequence[str]] = None,
              baselines: Optional[Sequence[str]] = None,
              settings: Optional[Sequence[str]] = None,
              inner_steps_by_shots: Sequence[Tuple[int, int]] = ()
              ) -> GridSpec:
  """The named grid, optionally restricted.

  Args:
    name: a key of `GRIDS`.
    rules: update rules to run (None: all of `RULES`).
    baselines: baselines to run (None: all of `BASELINES`).
    settings: settings as 'NwKs' (None: all of the grid's); each must be in
      the grid.
    inner_steps_by_shots: see `GridSpec`.

  Returns:
    The validated `GridSpec`.

  Raises:
    ValueError: unknown grid, rule, baseline or setting.
  """
  if name not in GRIDS:
    raise ValueError(f'grid={name!r}: must be one of {tuple(GRIDS)}')
  grid_settings = tuple(Setting(*s) for s in GRIDS[name])
  if settings is not None:
    chosen = [parse_setting(s) for s in settings]
    for setting in chosen:
      if setting not in grid_settings:
        raise ValueError(
            f'settings: {setting.name} is not in grid {name!r} '
            f'({", ".join(s.name for s in grid_settings)})')
    grid_settings = tuple(s for s in grid_settings if s in chosen)
  return GridSpec(
      name=name, settings=grid_settings,
      rules=RULES if rules is None else tuple(rules),
      baselines=BASELINES if baselines is None else tuple(baselines),
      inner_steps_by_shots=tuple(inner_steps_by_shots)).validate()


class Cell(NamedTuple):
  """One meta-trained run of the grid."""
  rule: str
  setting: Setting
  config: config_lib.ExperimentConfig
  workdir: str


def cell_config(base: config_lib.ExperimentConfig, rule: str,
                setting: Setting, inner_steps: Optional[int] = None
                ) -> config_lib.ExperimentConfig:
  """`base` with the update rule, N, K (and optionally T) replaced."""
  config = dataclasses.replace(
      base,
      episode=dataclasses.replace(base.episode, num_ways=setting.num_ways,
                                  num_shots=setting.num_shots),
      learner=dataclasses.replace(base.learner, num_ways=setting.num_ways),
      meta_learner=dataclasses.replace(base.meta_learner, update_rule=rule))
  if inner_steps is not None:
    config = dataclasses.replace(config, inner_loop=dataclasses.replace(
        config.inner_loop, inner_steps=inner_steps))
  return config.validate()


def cell_name(rule: str, setting: Setting) -> str:
  return f'{rule}_{setting.name}'


def expand_grid(spec: GridSpec, base: config_lib.ExperimentConfig,
                root: str) -> List[Cell]:
  """The meta-trained cells, setting by setting, rules in `spec` order."""
  return [Cell(rule, setting,
               cell_config(base, rule, setting,
                           spec.inner_steps(setting.num_shots,
                                            base.inner_loop.inner_steps)),
               os.path.join(root, cell_name(rule, setting)))
          for setting in spec.settings for rule in spec.rules]


def cell_flags_text(flags_text: Optional[str], cell: Cell) -> Optional[str]:
  """The grid's flags plus the cell's overrides (later flags win), so
  `main --flagfile=CELL/flags.txt` reruns the cell on its own."""
  if flags_text is None:
    return None
  overrides = (f'--workdir={cell.workdir}',
               f'--update_rule={cell.rule}',
               f'--num_ways={cell.setting.num_ways}',
               f'--num_shots={cell.setting.num_shots}',
               f'--inner_steps={cell.config.inner_loop.inner_steps}')
  return flags_text.rstrip('\n') + '\n' + '\n'.join(overrides) + '\n'


def _relevant(config_dict: dict) -> dict:
  """The parts of a config that change a run's numbers or budget."""
  relevant = json.loads(json.dumps(config_dict))  # Deep copy, tuples->lists.
  relevant['data'].pop('omniglot_dir', None)
  relevant['data'].pop('data_dir', None)
  relevant['data'].pop('data_root', None)
  for field in _IRRELEVANT_TRAIN_FIELDS:
    relevant['train'].pop(field, None)
  return relevant


def _baseline_relevant(config: config_lib.ExperimentConfig) -> dict:
  """The parts of a config the baselines' results depend on."""
  relevant = _relevant(config.to_dict())
  relevant.pop('meta_learner')
  relevant['train'] = {'test_episodes': config.train.test_episodes}
  return relevant


def finished_results(workdir: str, config: config_lib.ExperimentConfig
                     ) -> Optional[dict]:
  """The results of a finished run of `config` in workdir, else None.

  A run counts as finished when WORKDIR/results.json exists and the run's
  config equals `config` up to paths and bookkeeping settings; a different
  budget makes `train_and_evaluate` resume it instead.
  """
  results_path = os.path.join(workdir, workdir_lib.RESULTS_FILE)
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not (os.path.exists(results_path) and os.path.exists(config_path)):
    return None
  with open(config_path) as f:
    previous = json.load(f)
  if _relevant(previous) != _relevant(config.to_dict()):
    logging.info('%s: finished with another config; resuming it.', workdir)
    return None
  with open(results_path) as f:
    return json.load(f)


def run_rule_cell(cell: Cell, flags_text: Optional[str] = None,
                  train_fn: Optional[Callable] = None) -> dict:
  """The cell's results: read when finished, else trained (or resumed).

  Args:
    cell: from `expand_grid`.
    flags_text: the grid's flags (`cli.flags_as_text`), saved per cell with
      the cell's overrides.
    train_fn: `train_lib.train_and_evaluate` (tests pass a fake).
  """
  results = finished_results(cell.workdir, cell.config)
  if results is not None:
    logging.info('%s: finished, skipped.', cell.workdir)
    return results
  train_fn = train_fn or train_lib.train_and_evaluate
  logging.info('%s: training (%s, %s).', cell.workdir, cell.rule,
               cell.setting.title)
  return train_fn(cell.config, cell.workdir, cell_flags_text(flags_text, cell))


def baseline_config_dict(baseline_config) -> dict:
  return json.loads(json.dumps(dataclasses.asdict(baseline_config)))


def run_baselines(spec: GridSpec, base: config_lib.ExperimentConfig,
                  baseline_config, root: str, pools=None,
                  pretrain_fn: Optional[Callable] = None,
                  evaluate_fn: Optional[Callable] = None
                  ) -> Dict[str, Dict[str, dict]]:
  """Pretrains once, then evaluates the baselines on every setting.

  Results per setting are cached in ROOT/baselines_<N>w<K>s.json (reused
  while the experiment and baseline configs are unchanged); the pretraining
  is cached in ROOT/pretrain by `baselines_lib.pretrain`.

  Args:
    spec: the grid; nothing runs when `spec.baselines` is empty.
    base: the grid's base config (data, learner, episode queries, budgets).
    baseline_config: `baselines_lib.BaselineConfig`.
    root: the grid root.
    pools: `splits.ClassPools` (None: built from `base.data` when needed).
    pretrain_fn, evaluate_fn: `baselines_lib.pretrain` and
      `baselines_lib.evaluate_baselines` (tests pass fakes).

  Returns:
    {setting name: {baseline: its results dict}}.
  """
  if not spec.baselines:
    return {}
  pretrain_fn = pretrain_fn or baselines_lib.pretrain
  evaluate_fn = evaluate_fn or baselines_lib.evaluate_baselines
  pretrained = None
  by_setting = {}
  for setting in spec.settings:
    config = cell_config(base, base.meta_learner.update_rule, setting)
    key = {'config': _baseline_relevant(config),
           'baseline_config': baseline_config_dict(baseline_config)}
    path = os.path.join(root, f'baselines_{setting.name}.json')
    cached = None
    if os.path.exists(path):
      with open(path) as f:
        cached = json.load(f)
    if (cached and cached.get('key') == key and
        all(b in cached['results'] for b in spec.baselines)):
      logging.info('%s: finished, skipped.', path)
      results = cached['results']
    else:
      if pools is None:
        pools = splits.make_episode_pools(base.data, base.episode)
      if pretrained is None:
        logging.info('Baselines: pretraining in %s.',
                     os.path.join(root, PRETRAIN_DIR))
        pretrained = pretrain_fn(base, baseline_config,
                                 os.path.join(root, PRETRAIN_DIR),
                                 pools=pools)
      logging.info('Baselines: evaluating %s.', setting.title)
      results = evaluate_fn(config, baseline_config, pretrained, pools=pools)
      results = json.loads(json.dumps(results))
      workdir_lib.write_json(path, {'key': key, 'results': results})
    by_setting[setting.name] = {b: results[b] for b in spec.baselines}
  return by_setting


class CurvePoint(NamedTuple):
  """One validation of a run."""
  step: int
  train_seconds: float
  accuracy: float


def _scalar(value) -> float:
  if value.HasField('tensor'):
    return float(tf.make_ndarray(value.tensor))
  return float(value.simple_value)


def read_valid_curve(workdir: str) -> List[CurvePoint]:
  """Validation accuracy against meta-training time, from the run's logs.

  Reads the `accuracy` and `train_seconds` scalars of WORKDIR/logs/valid.
  A resumed run may have logged a step twice: the last write wins.

  Returns:
    Points sorted by step; [] when there are no logs.
  """
  log_dir = os.path.join(workdir, workdir_lib.LOG_DIR, 'valid')
  if not os.path.isdir(log_dir):
    return []
  events = []
  for name in sorted(os.listdir(log_dir)):
    if 'tfevents' not in name:
      continue
    for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag in ('accuracy', 'train_seconds'):
          events.append((event.wall_time, event.step, value.tag,
                         _scalar(value)))
  by_step: Dict[int, dict] = {}
  for _, step, tag, value in sorted(events, key=lambda e: e[0]):
    by_step.setdefault(step, {})[tag] = value
  return [CurvePoint(step, values['train_seconds'], values['accuracy'])
          for step, values in sorted(by_step.items())
          if 'train_seconds' in values and 'accuracy' in values]


def _row(method: str, kind: str, setting: Setting, results: dict,
         **fields) -> dict:
  """A table row: what every method reports, plus `fields`."""
  return dict(
      method=method, kind=kind, setting=setting.name,
      num_ways=setting.num_ways, num_shots=setting.num_shots,
      test_accuracy=results['test_accuracy'],
      test_ci95=results['test_ci95'],
      test_episodes=results['test_episodes'],
      test_accuracies=results.get('test_accuracies'),
      valid_accuracy=results.get('valid_accuracy'), **fields)


def _rule_row(rule: str, setting: Setting, results: dict,
              workdir: str, root: str) -> dict:
  return _row(rule, 'rule', setting, results,
              steps=results['steps'],
              train_seconds=results['train_seconds'],
              eval_seconds=results.get('test_seconds'),
              inner_steps=results.get('inner_steps'),
              workdir=os.path.relpath(workdir, root))


def _baseline_row(baseline: str, setting: Setting, results: dict) -> dict:
  row = _row(baseline, 'baseline', setting, results,
             steps=results.get('pretrain_steps'),
             train_seconds=results.get('pretrain_seconds'),
             eval_seconds=results.get('eval_seconds'),
             workdir=PRETRAIN_DIR)
  for key in ('learning_rate', 'inner_steps', 'selection_seconds'):
    if key in results:
      row[key] = results[key]
  return row


def format_percent(accuracy: float, ci95: float) -> str:
  """0.8731, 0.0062 -> '87.31 ± 0.62' (percent, 95% CI half-width)."""
  return f'{100 * accuracy:.2f} ± {100 * ci95:.2f}'


def format_seconds(seconds: Optional[float]) -> str:
  if seconds is None:
    return '–'
  if seconds < 60:
    return f'{seconds:.1f} s'
  minutes, rest = divmod(int(round(seconds)), 60)
  return f'{minutes} min {rest:02d} s'


def _method_title(method: str) -> str:
  return f'{METHOD_NAMES.get(method, method)} (`{method}`)'


def accuracy_table(rows: Sequence[dict], methods: Sequence[str],
                   settings: Sequence[Setting]) -> str:
  """Markdown: methods as rows, settings as columns (the paper's Table 1),
  test accuracy in % with its 95% CI; '–' where a cell has not run."""
  by_key = {(r['method'], r['setting']): r for r in rows}
  lines = ['| method | ' + ' | '.join(s.title for s in settings) + ' |',
           '|---|' + '---|' * len(settings)]
  for method in methods:
    cells = []
    for setting in settings:
      row = by_key.get((method, setting.name))
      cells.append('–' if row is None else
                   format_percent(row['test_accuracy'], row['test_ci95']))
    lines.append(f'| {_method_title(method)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def paired_difference(accuracies: Sequence[float],
                      reference: Sequence[float]) -> Tuple[float, float]:
  """Mean per-episode difference accuracies - reference and its 95% CI.

  Both are scored on the same episodes, in the same order, so the episode's
  difficulty cancels: the CI of the differences is much tighter than the
  two accuracies' own CIs suggest.
  """
  a = np.asarray(accuracies, np.float64)
  b = np.asarray(reference, np.float64)
  if a.shape != b.shape or a.ndim != 1 or not a.size:
    raise ValueError(f'paired comparison needs per-episode accuracies on the '
                     f'same episodes (got {a.shape} and {b.shape})')
  diff = a - b
  return float(diff.mean()), float(1.96 * diff.std() / np.sqrt(diff.size))


def paired_table(rows: Sequence[dict], methods: Sequence[str],
                 settings: Sequence[Setting], reference: str) -> str:
  """Markdown: per method and setting, its mean per-episode accuracy
  difference to `reference` (points, 95% CI); '–' where either has not run
  or kept no per-episode accuracies."""
  by_key = {(r['method'], r['setting']): r for r in rows}
  lines = ['| method | ' + ' | '.join(s.title for s in settings) + ' |',
           '|---|' + '---|' * len(settings)]
  for method in methods:
    if method == reference:
      continue
    cells = []
    for setting in settings:
      row = by_key.get((method, setting.name))
      ref = by_key.get((reference, setting.name))
      if (row is None or ref is None or not row.get('test_accuracies') or
          not ref.get('test_accuracies')):
        cells.append('–')
        continue
      mean, ci95 = paired_difference(row['test_accuracies'],
                                     ref['test_accuracies'])
      cells.append(f'{100 * mean:+.2f} ± {100 * ci95:.2f}')
    lines.append(f'| {_method_title(method)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def cost_table(rows: Sequence[dict]) -> str:
  """Markdown: per cell, test episodes, training steps and times."""
  lines = ['| method | setting | test episodes | training steps | '
           'training time | test time | meta-valid accuracy (%) |',
           '|---|---|---|---|---|---|---|']
  for row in rows:
    setting = Setting(row['num_ways'], row['num_shots'])
    if row['kind'] == 'baseline':
      steps = (f'{row["steps"]:,} (pretraining, shared)'
               if row['steps'] is not None else '–')
      train_time = f'{format_seconds(row["train_seconds"])} (shared)'
    else:
      steps = f'{row["steps"]:,}'
      train_time = format_seconds(row['train_seconds'])
    valid = ('–' if row['valid_accuracy'] is None else
             f'{100 * row["valid_accuracy"]:.2f}')
    method = f'`{row["method"]}`'
    if 'learning_rate' in row and 'inner_steps' in row:
      method += (f' (lr {row["learning_rate"]:g}, {row["inner_steps"]} '
                 'steps)')
    lines.append(f'| {method} | {setting.title} | '
                 f'{row["test_episodes"]:,} | {steps} | {train_time} | '
                 f'{format_seconds(row["eval_seconds"])} | {valid} |')
  return '\n'.join(lines) + '\n'


def describe_budget(spec: GridSpec, base: config_lib.ExperimentConfig,
                    baseline_config=None) -> str:
  """The budget of the grid in words, from the configs themselves."""
  t = base.train
  limit = f'at most {t.max_steps:,} meta-train steps'
  if t.max_train_seconds:
    limit += (f' or {format_seconds(t.max_train_seconds)} of meta-training '
              '(validation included), whichever comes first')
  shots = sorted({s.num_shots for s in spec.settings})
  inner = ', '.join(
      f'T={spec.inner_steps(k, base.inner_loop.inner_steps)} for {k}-shot'
      for k in shots) if spec.inner_steps_by_shots else (
          f'T={base.inner_loop.inner_steps}')
  text = (f'Update rules, per cell: {limit}; inner steps {inner}, '
          f'{"second" if base.inner_loop.second_order else "first"} order, '
          f'meta-batch {t.meta_batch_size}, Adam {t.learning_rate:g}; '
          f'validation every {t.eval_every:,} steps on {t.eval_episodes:,} '
          'fixed meta-valid episodes; the best validated checkpoint is '
          f'tested. Episodes: {base.episode.num_queries} queries per class; '
          f'{_data_description(base)}. Test: {t.test_episodes:,} fixed '
          'meta-test episodes per setting, the same for every method.')
  if spec.baselines and baseline_config is not None:
    b = baseline_config
    pretrain = f'at most {b.pretrain_steps:,} steps'
    if b.pretrain_seconds:
      pretrain += f' or {format_seconds(b.pretrain_seconds)}'
    rates = ', '.join(f'{v:g}' for v in b.finetune_learning_rates)
    steps = ', '.join(f'{v:g}' for v in b.finetune_steps)
    text += (f' Baselines: one classifier pretrained on all meta-train '
             f'classes ({pretrain}, batch {b.batch_size}, Adam '
             f'{b.learning_rate:g}), shared by every setting; fine-tuning '
             f'learning rate in {{{rates}}} and steps in {{{steps}}} chosen '
             f'on {b.selection_episodes:,} meta-valid episodes.')
  return text


def _data_description(base: config_lib.ExperimentConfig) -> str:
  data, episode = base.data, base.episode
  if data.dataset == 'omniglot':
    text = f'Omniglot, {data.split} split'
  elif data.dataset == 'mini_imagenet':
    text = ('mini-ImageNet, Ravi & Larochelle\'s split, '
            f'{data.image_size}x{data.image_size}x{data.channels}')
  else:
    text = (f'image folder, {data.image_size}x{data.image_size}x'
            f'{data.channels}')
  if episode.episode_classes != 'any':
    text += ', the classes of an episode from one alphabet'
  if episode.distinct_drawers:
    text += ', support and query drawn by different people'
  return text


def machine_info() -> dict:
  """CPU cores usable by this process, CPU model, GPUs, library versions."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  cpu_model = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu_model = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  try:
    memory_gib = (os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') /
                  2 ** 30)
  except (ValueError, OSError, AttributeError):
    memory_gib = None
  gpus = []
  for gpu in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(gpu)
    gpus.append(details.get('device_name', gpu.name))
  import keras  # pylint: disable=g-import-not-at-top
  return {'cpu_cores': cores, 'cpu_model': cpu_model,
          'memory_gib': memory_gib, 'gpus': gpus,
          'platform': platform.platform(), 'python': platform.python_version(),
          'tensorflow': tf.__version__, 'keras': keras.__version__}


def describe_machine(machine: dict) -> str:
  memory = (f', {machine["memory_gib"]:.0f} GiB'
            if machine.get('memory_gib') else '')
  gpus = ', '.join(machine['gpus']) if machine['gpus'] else 'no GPU'
  return (f'{machine["cpu_cores"]} CPU cores ({machine["cpu_model"]})'
          f'{memory}, {gpus}; {machine["platform"]}; Python '
          f'{machine["python"]}, TensorFlow {machine["tensorflow"]}, Keras '
          f'{machine["keras"]}.')


def write_valid_curves_plot(curves: Dict[str, Dict[str, List[CurvePoint]]],
                            baseline_levels: Dict[str, Dict[str, float]],
                            settings: Sequence[Setting], path: str) -> str:
  """Validation accuracy against training seconds, one subplot per setting.

  Args:
    curves: {setting name: {rule: points}}, one line per rule.
    baseline_levels: {setting name: {baseline: meta-valid accuracy}}, drawn
      as dashed horizontal lines.
    settings: the subplots, in order.
    path: the PNG to write (atomically).

  Returns:
    path.
  """
  # Only the report needs matplotlib (the `results` extra); the object API
  # with the Agg canvas touches no global backend state.
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(4.5 * len(settings), 3.6), layout='tight')
  backend_agg.FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(settings), squeeze=False)[0]
  colours = {}
  for ax, setting in zip(axes, settings):
    for rule, points in curves.get(setting.name, {}).items():
      if not points:
        continue
      colour = colours.setdefault(rule, f'C{len(colours)}')
      ax.plot([p.train_seconds for p in points],
              [100 * p.accuracy for p in points], marker='o', markersize=3,
              color=colour, label=rule)
    for baseline, level in baseline_levels.get(setting.name, {}).items():
      if level is None:
        continue
      colour = colours.setdefault(baseline, f'C{len(colours)}')
      ax.axhline(100 * level, linestyle='--', linewidth=1, color=colour,
                 label=f'{baseline} (no meta-training)')
    ax.set_title(setting.title)
    ax.set_xlabel('meta-training time (s)')
    ax.set_ylabel('meta-valid accuracy (%)')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize='small')
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.png')
  os.close(fd)
  try:
    fig.savefig(tmp, format='png', dpi=100)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def render_report(report: dict, image: Optional[str] = PLOT_FILE,
                  heading_level: int = 1) -> str:
  """The markdown of a report (`run_grid`'s return value).

  Args:
    report: the dict written to ROOT/results.json.
    image: the plot's path relative to the markdown file (None: no image).
    heading_level: 1 for results.md, deeper when embedded in a README.
  """
  h = '#' * heading_level
  settings = [Setting(*s) for s in report['settings']]
  methods = list(report['rules']) + list(report['baselines'])
  parts = [
      f'{h} Results: grid `{report["grid"]}`\n',
      f'Command: `{report["command"]}`\n',
      f'Budget: {report["budget"]}\n',
      f'Machine: {describe_machine(report["machine"])} Grid wall time '
      f'(this invocation, finished cells skipped): '
      f'{format_seconds(report["wall_seconds"])}; generated '
      f'{report["generated"]}.\n',
      f'{h}# Test accuracy (%, 95% CI)\n',
      accuracy_table(report['rows'], methods, settings),
      *_paired_parts(report, methods, settings, h),
      f'{h}# Steps and times per cell\n',
      'Training time: meta-training with its validations (the budgeted '
      'quantity); baselines: their one pretraining, shared by every '
      'setting. Test time: the final test on the meta-test episodes. '
      'Meta-valid accuracy: of the tested checkpoint (update rules, the best '
      'validated one) or of the chosen fine-tuning setting.\n',
      cost_table(report['rows']),
  ]
  missing = [f'{m} {s.name}' for s in settings for m in methods
             if not any(r['method'] == m and r['setting'] == s.name
                        for r in report['rows'])]
  if missing:
    parts.append(f'Not run yet: {", ".join(missing)}.\n')
  if image:
    parts.append(f'![meta-valid accuracy against meta-training time]'
                 f'({image})\n')
  return '\n'.join(parts)


def _paired_parts(report: dict, methods: Sequence[str],
                  settings: Sequence[Setting], h: str) -> List[str]:
  reference = PAIRED_REFERENCE
  if reference not in methods or len(methods) < 2:
    return []
  return [
      f'{h}# Paired comparison with `{reference}` (points, 95% CI)\n',
      'Every method is tested on the same episodes, so each is compared with '
      f'`{reference}` episode by episode: the mean of its per-episode '
      f'accuracy minus `{reference}`\'s, with the 95% CI of that mean '
      f'(negative: `{reference}` is ahead).\n',
      paired_table(report['rows'], methods, settings, reference),
  ]


def replace_between_markers(text: str, block: str, path: str = 'README') -> str:
  """`text` with what lies between README_BEGIN and README_END replaced.

  Raises:
    ValueError: the markers are missing, repeated or out of order.
  """
  begins, ends = text.count(README_BEGIN), text.count(README_END)
  if begins != 1 or ends != 1:
    raise ValueError(
        f'{path}: needs exactly one {README_BEGIN!r} and one {README_END!r} '
        f'line (found {begins} and {ends}); add them where the results '
        'table goes')
  start = text.index(README_BEGIN) + len(README_BEGIN)
  end = text.index(README_END)
  if end < start:
    raise ValueError(f'{path}: {README_END!r} comes before {README_BEGIN!r}')
  return text[:start] + '\n' + block.strip('\n') + '\n' + text[end:]


def update_readme(readme_path: str, report: dict,
                  image: Optional[str] = None,
                  plot_path: Optional[str] = None) -> None:
  """Replaces the README's results block with the report (atomically).

  Args:
    readme_path: the README with the markers.
    report: `run_grid`'s return value.
    image: the plot's path relative to the README, embedded (None: no
      image).
    plot_path: where the command wrote the plot, named in the text instead
      (generated files are not kept in git, so an embedded link to it would
      break on a fresh clone).
  """
  with open(readme_path, encoding='utf-8') as f:
    text = f.read()
  block = render_report(report, image=image, heading_level=3)
  if plot_path:
    block += (f'\nThe plot of meta-valid accuracy against meta-training '
              f'time per rule is written to `{plot_path}`.\n')
  workdir_lib.write_atomic(readme_path,
                           replace_between_markers(text, block, readme_path))


def run_grid(spec: GridSpec, base: config_lib.ExperimentConfig, root: str,
             baseline_config=None, command: str = '',
             flags_text: Optional[str] = None,
             train_fn: Optional[Callable] = None,
             pretrain_fn: Optional[Callable] = None,
             evaluate_baselines_fn: Optional[Callable] = None,
             pools=None) -> dict:
  """Runs (or resumes) every cell of the grid and writes the report.

  Baselines run first (one pretraining serves every setting), then the
  update rules setting by setting. The report (results.md, results.json,
  valid_curves.png) is rewritten after every cell, so it shows progress;
  cells not yet run read '–'.

  Args:
    spec: the grid.
    base: the base experiment config; each cell replaces the update rule,
      N and K (and T per `spec.inner_steps_by_shots`).
    root: the grid root (see the module docstring).
    baseline_config: `baselines_lib.BaselineConfig` (needed when
      `spec.baselines` is not empty).
    command: the command line, quoted in the report.
    flags_text: the command's flags as a flagfile, saved per cell.
    train_fn, pretrain_fn, evaluate_baselines_fn, pools: see
      `run_rule_cell` and `run_baselines` (tests pass fakes).

  Returns:
    The report, as written to ROOT/results.json.
  """
  spec.validate()
  base.validate()
  dataset = GRID_DATASETS.get(spec.name)
  if dataset and base.data.dataset != dataset:
    raise ValueError(f'grid={spec.name}: needs --dataset={dataset} (got '
                     f'{base.data.dataset})')
  if spec.baselines and baseline_config is None:
    raise ValueError('baselines requested but no baseline_config given')
  start = time.perf_counter()
  os.makedirs(root, exist_ok=True)
  cells = expand_grid(spec, base, root)
  report = {
      'grid': spec.name,
      'settings': [list(s) for s in spec.settings],
      'rules': list(spec.rules),
      'baselines': list(spec.baselines),
      'inner_steps_by_shots': [list(p) for p in spec.inner_steps_by_shots],
      'command': command,
      'budget': describe_budget(spec, base, baseline_config),
      'config': base.to_dict(),
      'baseline_config': (baseline_config_dict(baseline_config)
                          if baseline_config is not None else None),
      'machine': machine_info(),
      'rows': [],
      'curves': {},
      'wall_seconds': 0.0,
      'generated': '',
  }

  def write_report():
    report['rows'] = _sorted_rows(report['rows'], spec)
    report['wall_seconds'] = time.perf_counter() - start
    report['generated'] = datetime.datetime.now(
        datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    curves = {s.name: {} for s in spec.settings}
    levels = {s.name: {} for s in spec.settings}
    for row in report['rows']:
      if row['kind'] == 'rule':
        curves[row['setting']][row['method']] = [
            CurvePoint(*p) for p in report['curves'][row['workdir']]]
      else:
        levels[row['setting']][row['method']] = row['valid_accuracy']
    write_valid_curves_plot(curves, levels, spec.settings,
                            os.path.join(root, PLOT_FILE))
    workdir_lib.write_json(os.path.join(root, RESULTS_JSON), report)
    workdir_lib.write_atomic(os.path.join(root, RESULTS_MD),
                             render_report(report))

  baselines = run_baselines(spec, base, baseline_config, root, pools=pools,
                            pretrain_fn=pretrain_fn,
                            evaluate_fn=evaluate_baselines_fn)
  for setting in spec.settings:
    for baseline, results in baselines.get(setting.name, {}).items():
      report['rows'].append(_baseline_row(baseline, setting, results))
  for cell in cells:
    results = run_rule_cell(cell, flags_text, train_fn)
    row = _rule_row(cell.rule, cell.setting, results, cell.workdir, root)
    report['rows'].append(row)
    report['curves'][row['workdir']] = [
        list(p) for p in read_valid_curve(cell.workdir)]
    write_report()
  if not cells:
    write_report()
  return report


def _sorted_rows(rows: List[dict], spec: GridSpec) -> List[dict]:
  methods = list(spec.rules) + list(spec.baselines)
  settings = [s.name for s in spec.settings]
  return sorted(rows, key=lambda r: (settings.index(r['setting']),
                                     methods.index(r['method'])))
