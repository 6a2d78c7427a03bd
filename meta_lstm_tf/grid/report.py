"""The grid's report: rows, tables (accuracy, paired differences, cost),
the budget, data and machine it ran on, results.md and the README block."""

import os
import platform
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.grid import spec as grid_spec

METHOD_NAMES = {
    'meta_lstm': 'Meta-learner LSTM',
    'sgd': 'SGD from a learned init (MAML)',
    'meta_sgd': 'Meta-SGD',
    'finetune': 'Baseline: fine-tune',
    'nearest_neighbour': 'Baseline: nearest neighbour',
}


# The method every other is compared with, episode by episode.
PAIRED_REFERENCE = 'meta_lstm'


README_BEGIN = '<!-- results:begin -->'


README_END = '<!-- results:end -->'


def _row(method: str, kind: str, setting: grid_spec.Setting, results: dict,
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


def rule_row(rule: str, setting: grid_spec.Setting, results: dict,
              workdir: str, root: str) -> dict:
  return _row(rule, 'rule', setting, results,
              steps=results['steps'],
              train_seconds=results['train_seconds'],
              eval_seconds=results.get('test_seconds'),
              inner_steps=results.get('inner_steps'),
              workdir=os.path.relpath(workdir, root))


def baseline_row(baseline: str, setting: grid_spec.Setting,
                 results: dict) -> dict:
  row = _row(baseline, 'baseline', setting, results,
             steps=results.get('pretrain_steps'),
             train_seconds=results.get('pretrain_seconds'),
             eval_seconds=results.get('eval_seconds'),
             workdir=grid_spec.PRETRAIN_DIR)
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
                   settings: Sequence[grid_spec.Setting]) -> str:
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
                 settings: Sequence[grid_spec.Setting], reference: str) -> str:
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
    setting = grid_spec.Setting(row['num_ways'], row['num_shots'])
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


def describe_budget(spec: grid_spec.GridSpec, base: config_lib.ExperimentConfig,
                    baseline_config=None,
                    setting_bases: Optional[dict] = None) -> str:
  """The budget of the grid in words, from the configs themselves.

  With `setting_bases` ({setting name: config}), each such setting's cells
  are described from its own config, one sentence per setting.
  """
  setting_bases = setting_bases or {}
  own = [s for s in spec.settings if s.name in setting_bases]
  rest = [s for s in spec.settings if s.name not in setting_bases]
  parts = []
  if rest:
    parts.append(_rule_budget(spec, base, rest,
                              'Update rules, per cell' if not own else
                              'Update rules at ' + ', '.join(
                                  s.name for s in rest) + ', per cell'))
  for setting in own:
    parts.append(_rule_budget(spec, setting_bases[setting.name], [setting],
                              f'{setting.name}, per cell'))
  text = ' '.join(parts)
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


def _rule_budget(spec: grid_spec.GridSpec, base: config_lib.ExperimentConfig,
                 settings: Sequence[grid_spec.Setting], lead: str) -> str:
  """One sentence: the update-rule budget of `settings`, from `base`."""
  t = base.train
  limit = f'at most {t.max_steps:,} meta-train steps'
  if t.max_train_seconds:
    limit += (f' or {format_seconds(t.max_train_seconds)} of meta-training '
              '(validation included), whichever comes first')
  shots = sorted({s.num_shots for s in settings})
  inner = ', '.join(
      f'T={spec.inner_steps(k, base.inner_loop.inner_steps)} for {k}-shot'
      for k in shots) if spec.inner_steps_by_shots else (
          f'T={base.inner_loop.inner_steps}')
  adam = (f'Adam {t.learning_rate:g}' if t.lr_schedule == 'constant' else
          f'Adam {t.learning_rate:g} with {t.lr_schedule} decay to '
          f'{t.final_learning_rate:g}')
  learner = base.learner
  return (f'{lead}: {limit}; inner steps {inner}, '
          f'{"second" if base.inner_loop.second_order else "first"} order, '
          f'meta-batch {t.meta_batch_size}, {adam}; '
          f'learner {learner.num_blocks} conv blocks of '
          f'{learner.num_filters} filters; '
          f'validation every {t.eval_every:,} steps on {t.eval_episodes:,} '
          'fixed meta-valid episodes; the best validated checkpoint is '
          f'tested. Episodes: {base.episode.num_queries} queries per class; '
          f'{_data_description(base)}. Test: {t.test_episodes:,} fixed '
          'meta-test episodes per setting, the same for every method.')


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


def render_report(report: dict, image: Optional[str] = grid_spec.PLOT_FILE,
                  heading_level: int = 1) -> str:
  """The markdown of a report (`runner_lib.run_grid`'s return value).

  Args:
    report: the dict written to ROOT/results.json.
    image: the plot's path relative to the markdown file (None: no image).
    heading_level: 1 for results.md, deeper when embedded in a README.
  """
  h = '#' * heading_level
  settings = [grid_spec.Setting(*s) for s in report['settings']]
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
      'validated one) or of the chosen fine-tuning setting. Times are wall '
      'times under whatever else ran meanwhile (a cell copied in keeps its '
      'own): compare them only between cells trained alone, one after '
      'another. Step budgets keep the accuracies independent of the load.\n',
      cost_table(report['rows']),
  ]
  planned = report.get('cells')
  missing = [f'{m} {s.name}' for s in settings for m in methods
             if (planned is None or m not in report['rules'] or
                 grid_spec.cell_name(m, s) in planned)
             and not any(r['method'] == m and r['setting'] == s.name
                         for r in report['rows'])]
  if missing:
    parts.append(f'Not run yet: {", ".join(missing)}.\n')
  if image:
    parts.append(f'![meta-valid accuracy against meta-training time]'
                 f'({image})\n')
  return '\n'.join(parts)


def _paired_parts(report: dict, methods: Sequence[str],
                  settings: Sequence[grid_spec.Setting], h: str) -> List[str]:
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
    report: `runner_lib.run_grid`'s return value.
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
