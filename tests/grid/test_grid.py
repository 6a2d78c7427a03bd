"""The grid report: grid expansion, resumption, curves, tables, plot, README.

Every test runs on fake runs (results.json, config.json and TensorBoard event
files written here), without training; the real command on the real data is
in `test_grid_integration.py`.
"""

import dataclasses
import glob
import json
import os
import tempfile
from unittest import mock

from absl import flags
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf.bin import results
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.grid import curves as grid_curves
from meta_lstm_tf.grid import report as grid_report
from meta_lstm_tf.grid import runner as grid_runner
from meta_lstm_tf.grid import spec as grid_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
Setting = grid_spec.Setting


def write_valid_logs(workdir, points, name='valid'):
  """points: (step, train_seconds or None, accuracy) validations."""
  writer = tf.summary.create_file_writer(os.path.join(workdir, 'logs', name))
  with writer.as_default():
    for step, seconds, accuracy in points:
      tf.summary.scalar('accuracy', accuracy, step=step)
      if seconds is not None:
        tf.summary.scalar('train_seconds', seconds, step=step)
      tf.summary.scalar('meta_loss', 1.0, step=step)
  writer.close()


class FakeTraining:
  """Stands in for `train_lib.train_and_evaluate`: writes a finished run."""

  def __init__(self):
    self.calls = []

  def __call__(self, config, workdir, flags_text=None):
    self.calls.append((config, workdir, flags_text))
    rule = config.meta_learner.update_rule
    accuracy = {'meta_lstm': 0.8, 'sgd': 0.7, 'meta_sgd': 0.75}[rule]
    accuracy += 0.01 * config.episode.num_shots
    steps = config.train.max_steps
    write_valid_logs(workdir, [(s, 2.0 * s, accuracy * s / steps)
                               for s in range(config.train.eval_every,
                                              steps + 1,
                                              config.train.eval_every)])
    results = {'test_accuracy': accuracy, 'test_ci95': 0.0123,
               'test_episodes': config.train.test_episodes, 'steps': steps,
               'train_seconds': 2.0 * steps, 'test_seconds': 3.5,
               'valid_accuracy': accuracy - 0.05,
               'test_accuracies': [accuracy] * config.train.test_episodes,
               'num_ways': config.episode.num_ways,
               'num_shots': config.episode.num_shots,
               'inner_steps': config.inner_loop.inner_steps}
    workdir_lib.write_json(os.path.join(workdir, 'config.json'),
                           config.to_dict())
    workdir_lib.write_json(os.path.join(workdir, 'results.json'), results)
    return results


class FakeBaselines:
  """Stands in for `baselines.pretrain` and `evaluate_baselines`."""

  def __init__(self):
    self.pretrain_calls = 0
    self.evaluate_calls = []

  def pretrain(self, config, baseline_config, out_dir, pools=None):
    del config, pools
    self.pretrain_calls += 1
    return {'params': None, 'steps': baseline_config.pretrain_steps,
            'seconds': 42.0, 'out_dir': out_dir}

  def evaluate(self, config, baseline_config, pretrained, pools=None):
    del baseline_config, pools
    self.evaluate_calls.append(config.episode.num_shots)
    common = {'test_episodes': config.train.test_episodes,
              'pretrain_steps': pretrained['steps'],
              'pretrain_seconds': pretrained['seconds'], 'eval_seconds': 1.5,
              'selection_seconds': 4.0}
    return {
        'finetune': dict(common, test_accuracy=0.6, test_ci95=0.02,
                         test_accuracies=[0.6] * config.train.test_episodes,
                         valid_accuracy=0.55, learning_rate=0.05,
                         inner_steps=20),
        'nearest_neighbour': dict(common, test_accuracy=0.5, test_ci95=0.03,
                                  valid_accuracy=0.45),
    }


def tiny_base_config(**train):
  defaults = dict(max_steps=20, eval_every=10, test_episodes=50,
                  quiet=True, export=False)
  defaults.update(train)
  runtime = {f.name for f in dataclasses.fields(config_lib.RuntimeConfig)}
  return config_lib.ExperimentConfig(
      inner_loop=config_lib.InnerLoopConfig(inner_steps=5),
      train=config_lib.TrainConfig(
          **{k: v for k, v in defaults.items() if k not in runtime}),
      runtime=config_lib.RuntimeConfig(
          **{k: v for k, v in defaults.items() if k in runtime})).validate()


class GridTest(tf.test.TestCase, parameterized.TestCase):

  def test_named_grids(self):
    self.assertEqual(grid_spec.make_grid('mini').settings,
                     (Setting(5, 1), Setting(5, 5)))
    paper = grid_spec.make_grid('paper')
    self.assertEqual([s.name for s in paper.settings],
                     ['5w1s', '5w5s', '20w1s', '20w5s'])
    self.assertEqual(paper.rules, ('meta_lstm', 'sgd', 'meta_sgd'))
    self.assertEqual(paper.baselines, ('finetune', 'nearest_neighbour'))

  def test_restrictions_keep_grid_order(self):
    spec = grid_spec.make_grid('paper', rules=['sgd'], baselines=[],
                                 settings=['20w5s', '5w1s'])
    self.assertEqual(spec.settings, (Setting(5, 1), Setting(20, 5)))
    self.assertEqual(spec.rules, ('sgd',))
    self.assertEqual(spec.baselines, ())

  @parameterized.parameters(
      (dict(name='huge'), 'grid=.huge'),
      (dict(name='mini', settings=['20w1s']), '20w1s is not in grid'),
      (dict(name='mini', settings=['5-way']), 'expected NwKs'),
      (dict(name='mini', rules=['adam']), 'adam'),
      (dict(name='mini', baselines=['knn']), 'knn'),
      (dict(name='mini', rules=[], baselines=[]), 'nothing to run'),
  )
  def test_bad_grid_is_rejected(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      grid_spec.make_grid(**kwargs)

  def test_expand_grid_replaces_rule_ways_shots(self):
    root = '/grid'
    spec = grid_spec.make_grid('paper')
    cells = grid_spec.expand_grid(spec, tiny_base_config(), root)
    self.assertLen(cells, 12)
    for cell in cells:
      self.assertEqual(cell.config.meta_learner.update_rule, cell.rule)
      self.assertEqual(cell.config.episode.num_ways, cell.setting.num_ways)
      self.assertEqual(cell.config.learner.num_ways, cell.setting.num_ways)
      self.assertEqual(cell.config.episode.num_shots, cell.setting.num_shots)
      self.assertEqual(cell.config.inner_loop.inner_steps, 5)
      self.assertEqual(cell.config.train, tiny_base_config().train)
      self.assertEqual(
          cell.workdir,
          f'/grid/{cell.rule}_{cell.setting.num_ways}w'
          f'{cell.setting.num_shots}s')
    self.assertEqual([(c.rule, c.setting.name) for c in cells[:4]],
                     [('meta_lstm', '5w1s'), ('sgd', '5w1s'),
                      ('meta_sgd', '5w1s'), ('meta_lstm', '5w5s')])

  def test_inner_steps_by_shots(self):
    spec = grid_spec.make_grid('paper', rules=['meta_lstm'],
                                 inner_steps_by_shots=[(1, 12)])
    cells = grid_spec.expand_grid(spec, tiny_base_config(), '/g')
    self.assertEqual({c.setting.name: c.config.inner_loop.inner_steps
                      for c in cells},
                     {'5w1s': 12, '5w5s': 5, '20w1s': 12, '20w5s': 5})

  def test_cells_restrict_the_product(self):
    spec = grid_spec.make_grid('paper', baselines=[],
                               cells=['meta_lstm_20w5s', 'sgd_5w1s'])
    cells = grid_spec.expand_grid(spec, tiny_base_config(), '/g')
    self.assertEqual([os.path.basename(c.workdir) for c in cells],
                     ['sgd_5w1s', 'meta_lstm_20w5s'])
    self.assertTrue(spec.runs('sgd', Setting(5, 1)))
    self.assertFalse(spec.runs('sgd', Setting(5, 5)))
    with self.assertRaisesRegex(ValueError, "cells: 'sgd_5w1s' is not"):
      grid_spec.make_grid('paper', rules=['meta_lstm'], cells=['sgd_5w1s'])

  def test_setting_bases_give_a_setting_its_own_config(self):
    spec = grid_spec.make_grid('mini', baselines=[])
    own = tiny_base_config(max_steps=70)
    own = dataclasses.replace(own, episode=config_lib.EpisodeConfig(
        num_ways=5, num_shots=5, num_queries=3))
    cells = grid_spec.expand_grid(spec, tiny_base_config(), '/g',
                                  {'5w5s': own})
    by_setting = {c.setting.name: c.config for c in cells}
    self.assertEqual(by_setting['5w1s'].train.max_steps, 20)
    self.assertEqual(by_setting['5w5s'].train.max_steps, 70)
    self.assertEqual(by_setting['5w5s'].episode.num_queries, 3)
    self.assertEqual(by_setting['5w1s'].episode.num_queries, 15)

  def test_cell_flags_text_overrides_the_grid_flags(self):
    spec = grid_spec.make_grid('mini', rules=['sgd'])
    cell = grid_spec.expand_grid(spec, tiny_base_config(), '/g')[1]
    text = grid_spec.cell_flags_text('--num_ways=5\n--num_shots=1\n', cell)
    lines = text.splitlines()
    self.assertEqual(lines[:2], ['--num_ways=5', '--num_shots=1'])
    self.assertIn('--num_shots=5', lines[2:])
    self.assertIn('--update_rule=sgd', lines[2:])
    self.assertIn('--workdir=/g/sgd_5w5s', lines[2:])


class BudgetTest(tf.test.TestCase):

  def test_names_the_meta_learning_rate_schedule(self):
    spec = grid_spec.make_grid('mini')
    constant = grid_report.describe_budget(spec, tiny_base_config(), None)
    self.assertIn('Adam 0.001;', constant)
    cosine = grid_report.describe_budget(
        spec, tiny_base_config(learning_rate=0.003, lr_schedule='cosine'),
        None)
    self.assertIn('Adam 0.003 with cosine decay to 0;', cosine)


class CurveTest(tf.test.TestCase):

  def test_reads_seconds_and_accuracy_per_validation(self):
    workdir = self.get_temp_dir()
    write_valid_logs(workdir, [(10, 5.0, 0.3), (20, 9.5, 0.45),
                               (30, None, 0.5)])
    curve = grid_curves.read_valid_curve(workdir)
    self.assertEqual([p.step for p in curve], [10, 20])
    self.assertAllClose([p.train_seconds for p in curve], [5.0, 9.5])
    self.assertAllClose([p.accuracy for p in curve], [0.3, 0.45])

  def test_resumed_run_last_write_wins(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    write_valid_logs(workdir, [(10, 5.0, 0.3), (20, 9.5, 0.45)])
    write_valid_logs(workdir, [(20, 10.0, 0.46), (30, 14.0, 0.5)])
    curve = grid_curves.read_valid_curve(workdir)
    self.assertEqual([p.step for p in curve], [10, 20, 30])
    self.assertAllClose(curve[1][1:], (10.0, 0.46))

  def test_no_logs_is_empty(self):
    self.assertEqual(grid_curves.read_valid_curve(self.get_temp_dir()), [])


def sample_rows():
  rows = []
  for method, kind, accuracy in (('meta_lstm', 'rule', 0.87312),
                                 ('sgd', 'rule', 0.8),
                                 ('finetune', 'baseline', 0.7),
                                 ('nearest_neighbour', 'baseline', 0.6)):
    row = {'method': method, 'kind': kind, 'setting': '5w1s',
           'num_ways': 5, 'num_shots': 1, 'test_accuracy': accuracy,
           'test_ci95': 0.00617, 'test_episodes': 600, 'steps': 4000,
           'train_seconds': 181.2, 'eval_seconds': 12.0,
           'valid_accuracy': accuracy - 0.02}
    if method == 'finetune':
      row.update(learning_rate=0.05, inner_steps=20)
    rows.append(row)
  return rows


class TableTest(tf.test.TestCase):

  def test_accuracy_table_in_percent_with_ci(self):
    table = grid_report.accuracy_table(
        sample_rows(), ['meta_lstm', 'sgd', 'meta_sgd', 'finetune',
                        'nearest_neighbour'],
        [Setting(5, 1), Setting(5, 5)])
    lines = table.splitlines()
    self.assertEqual(lines[0], '| method | 5-way 1-shot | 5-way 5-shot |')
    self.assertLen(lines, 2 + 5)
    self.assertIn('87.31 ± 0.62', lines[2])
    self.assertIn('(`meta_lstm`)', lines[2])
    self.assertIn('(`meta_sgd`) | – | – |', lines[4])
    self.assertIn('60.00 ± 0.62', lines[6])

  def test_cost_table(self):
    table = grid_report.cost_table(sample_rows())
    self.assertIn('| `meta_lstm` | 5-way 1-shot | 600 | 4,000 | 3 min 01 s '
                  '| 12.0 s | 85.31 |', table)
    self.assertIn('4,000 (pretraining, shared)', table)
    self.assertIn('`finetune` (lr 0.05, 20 steps)', table)

  def test_paired_difference_against_numpy(self):
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 16, size=600) / 15
    better = np.clip(reference + rng.integers(0, 3, size=600) / 15, 0, 1)
    mean, ci95 = grid_report.paired_difference(better, reference)
    diff = better - reference
    self.assertAlmostEqual(mean, diff.mean())
    self.assertAlmostEqual(ci95, 1.96 * diff.std() / np.sqrt(600))
    # Pairing removes the episodes' shared difficulty: the paired CI is far
    # tighter than the unpaired one.
    unpaired = 1.96 * np.sqrt((better.var() + reference.var()) / 600)
    self.assertLess(ci95, unpaired / 2)
    with self.assertRaisesRegex(ValueError, 'same episodes'):
      grid_report.paired_difference(better[:10], reference)

  def test_paired_table(self):
    rows = sample_rows()
    per_episode = {'meta_lstm': [1.0, 0.8, 0.6, 1.0],
                   'sgd': [0.8, 0.8, 0.6, 0.6],
                   'finetune': [1.0, 1.0, 0.8, 1.0]}
    for row in rows:
      row['test_accuracies'] = per_episode.get(row['method'])
    table = grid_report.paired_table(
        rows, ['meta_lstm', 'sgd', 'finetune', 'nearest_neighbour'],
        [Setting(5, 1)], 'meta_lstm')
    lines = table.splitlines()
    self.assertLen(lines, 2 + 3)  # no row for the reference itself
    sgd = np.array(per_episode['sgd']) - per_episode['meta_lstm']
    self.assertIn(f'(`sgd`) | {100 * sgd.mean():+.2f} ± '
                  f'{100 * 1.96 * sgd.std() / 2:.2f} |', lines[2])
    self.assertIn('(`finetune`) | +10.00 ± 9.80 |', lines[3])
    self.assertIn('(`nearest_neighbour`) | – |', lines[4])

  def test_format_seconds(self):
    self.assertEqual(grid_report.format_seconds(9.04), '9.0 s')
    self.assertEqual(grid_report.format_seconds(454.4), '7 min 34 s')
    self.assertEqual(grid_report.format_seconds(None), '–')


class ReadmeTest(tf.test.TestCase):

  def test_replaces_only_between_markers(self):
    text = ('intro\n<!-- results:begin -->\nold table\n'
            '<!-- results:end -->\noutro\n')
    new = grid_report.replace_between_markers(text, '| new |\n')
    self.assertEqual(new, 'intro\n<!-- results:begin -->\n| new |\n'
                     '<!-- results:end -->\noutro\n')
    self.assertEqual(grid_report.replace_between_markers(new, '| new |'),
                     new)

  def test_missing_or_misordered_markers_raise(self):
    for text in ('no markers\n', '<!-- results:begin -->\n',
                 '<!-- results:end -->\n<!-- results:begin -->\n',
                 '<!-- results:begin --><!-- results:begin -->'
                 '<!-- results:end -->'):
      with self.assertRaisesRegex(ValueError, 'README.md'):
        grid_report.replace_between_markers(text, 'x', 'README.md')


class PlotTest(tf.test.TestCase):

  def test_writes_a_png(self):
    path = os.path.join(self.get_temp_dir(), 'sub', 'curves.png')
    point = grid_curves.CurvePoint
    grid_curves.write_valid_curves_plot(
        {'5w1s': {'meta_lstm': [point(10, 5.0, 0.3), point(20, 9.0, 0.5)],
                  'sgd': []}},
        {'5w1s': {'finetune': 0.4}, '5w5s': {}},
        [Setting(5, 1), Setting(5, 5)], path)
    with open(path, 'rb') as f:
      data = f.read()
    self.assertTrue(data.startswith(PNG_MAGIC))
    self.assertGreater(len(data), 5000)
    self.assertEqual(glob.glob(os.path.join(os.path.dirname(path), '.tmp*')),
                     [])


class RunGridTest(tf.test.TestCase):

  def run_grid(self, root, base, training, fake_baselines, **kwargs):
    return grid_runner.run_grid(
        grid_spec.make_grid('mini'), base, root,
        baseline_config=baselines.BaselineConfig(pretrain_steps=7),
        command='python -m meta_lstm_tf.bin.results --grid=mini',
        flags_text='--grid=mini\n', train_fn=training,
        pretrain_fn=fake_baselines.pretrain,
        evaluate_baselines_fn=fake_baselines.evaluate, pools=object(), **kwargs)

  def test_runs_every_cell_once_and_writes_the_report(self):
    root = os.path.join(self.get_temp_dir(), 'grid')
    training, baselines = FakeTraining(), FakeBaselines()
    report = self.run_grid(root, tiny_base_config(), training, baselines)

    self.assertLen(training.calls, 6)
    self.assertEqual(baselines.pretrain_calls, 1)
    self.assertEqual(baselines.evaluate_calls, [1, 5])
    config, workdir, flags_text = training.calls[4]
    self.assertEqual(workdir, os.path.join(root, 'sgd_5w5s'))
    self.assertEqual(config.episode.num_shots, 5)
    self.assertIn('--update_rule=sgd', flags_text)
    self.assertLen(report['rows'], 10)

    with open(os.path.join(root, 'results.md')) as f:
      markdown = f.read()
    for method in ('meta_lstm', 'sgd', 'meta_sgd', 'finetune',
                   'nearest_neighbour'):
      self.assertIn(f'(`{method}`) |', markdown)
    self.assertIn('| 81.00 ± 1.23 | 85.00 ± 1.23 |', markdown)  # meta_lstm
    self.assertIn('| 60.00 ± 2.00 | 60.00 ± 2.00 |', markdown)  # finetune
    # Paired with meta_lstm, episode by episode (nearest_neighbour's fake
    # keeps no per-episode accuracies).
    self.assertIn('Paired comparison with `meta_lstm`', markdown)
    self.assertIn('(`sgd`) | -10.00 ± 0.00 | -10.00 ± 0.00 |', markdown)
    self.assertIn('(`finetune`) | -21.00 ± 0.00 | -25.00 ± 0.00 |', markdown)
    self.assertIn('(`nearest_neighbour`) | – | – |', markdown)
    self.assertIn('python -m meta_lstm_tf.bin.results --grid=mini', markdown)
    self.assertIn('at most 20 meta-train steps', markdown)
    self.assertIn('CPU cores', markdown)
    self.assertIn('compare them only between cells trained alone', markdown)
    self.assertIn(tf.__version__, markdown)
    self.assertIn('![', markdown)
    self.assertNotIn('Not run yet', markdown)
    with open(os.path.join(root, 'results.json')) as f:
      saved = json.load(f)
    self.assertEqual(saved['rows'], report['rows'])
    self.assertAllClose(saved['curves']['meta_lstm_5w1s'],
                        [[10, 20.0, 0.405], [20, 40.0, 0.81]])
    with open(os.path.join(root, 'valid_curves.png'), 'rb') as f:
      self.assertTrue(f.read().startswith(PNG_MAGIC))

    # Rerun: every cell is finished, nothing trains or evaluates again.
    again = self.run_grid(root, tiny_base_config(), training, baselines)
    self.assertLen(training.calls, 6)
    self.assertEqual(baselines.pretrain_calls, 1)
    self.assertLen(baselines.evaluate_calls, 2)
    self.assertEqual(again['rows'], report['rows'])

    # Bookkeeping flags do not count as another experiment.
    self.run_grid(root, tiny_base_config(quiet=False, log_every=7), training,
                  baselines)
    self.assertLen(training.calls, 6)

    # A bigger budget resumes every update-rule cell; the baselines, which
    # do not depend on it, stay cached.
    self.run_grid(root, tiny_base_config(max_steps=30), training, baselines)
    self.assertLen(training.calls, 12)
    self.assertLen(baselines.evaluate_calls, 2)

  def test_update_readme(self):
    root = os.path.join(self.get_temp_dir(), 'grid2')
    report = self.run_grid(root, tiny_base_config(), FakeTraining(),
                           FakeBaselines())
    readme = os.path.join(self.get_temp_dir(), 'README.md')
    with open(readme, 'w') as f:
      f.write('# X\n\n<!-- results:begin -->\nstale\n<!-- results:end -->\n'
              'tail\n')
    grid_report.update_readme(readme, report, image='runs/g/valid_curves.png')
    with open(readme) as f:
      text = f.read()
    self.assertNotIn('stale', text)
    self.assertTrue(text.startswith('# X\n\n<!-- results:begin -->\n'
                                    '### Results: grid `mini`'))
    self.assertTrue(text.endswith('<!-- results:end -->\ntail\n'))
    self.assertIn('| 81.00 ± 1.23 |', text)
    self.assertIn('(runs/g/valid_curves.png)', text)

  def test_rules_only_needs_no_baselines(self):
    root = os.path.join(self.get_temp_dir(), 'grid3')
    training = FakeTraining()
    report = grid_runner.run_grid(
        grid_spec.make_grid('mini', rules=['meta_lstm'], baselines=[],
                              settings=['5w5s']),
        tiny_base_config(), root, train_fn=training)
    self.assertLen(training.calls, 1)
    self.assertEqual([r['method'] for r in report['rows']], ['meta_lstm'])

  def test_cells_and_setting_bases(self):
    root = os.path.join(self.get_temp_dir(), 'grid5')
    training = FakeTraining()
    spec = grid_spec.make_grid('mini', baselines=[],
                               cells=['meta_lstm_5w1s', 'sgd_5w1s',
                                      'meta_lstm_5w5s'])
    report = grid_runner.run_grid(
        spec, tiny_base_config(), root, train_fn=training,
        flags_text='--grid=mini\n',
        setting_bases={'5w5s': tiny_base_config(max_steps=40)},
        setting_flags_texts={'5w5s': '--max_steps=40\n'})
    self.assertEqual([os.path.basename(w) for _, w, _ in training.calls],
                     ['meta_lstm_5w1s', 'sgd_5w1s', 'meta_lstm_5w5s'])
    self.assertEqual([c.train.max_steps for c, _, _ in training.calls],
                     [20, 20, 40])
    self.assertTrue(training.calls[0][2].startswith('--grid=mini\n'))
    self.assertTrue(training.calls[2][2].startswith('--max_steps=40\n'))
    self.assertEqual(report['cells'],
                     ['meta_lstm_5w1s', 'sgd_5w1s', 'meta_lstm_5w5s'])
    self.assertEqual(report['setting_configs']['5w5s']['train']['max_steps'],
                     40)
    with open(os.path.join(root, 'results.md')) as f:
      markdown = f.read()
    # The cells left out on purpose are not "not run yet".
    self.assertNotIn('Not run yet', markdown)
    self.assertIn('Update rules at 5w1s, per cell: at most 20 meta-train '
                  'steps', markdown)
    self.assertIn('5w5s, per cell: at most 40 meta-train steps', markdown)
    with self.assertRaisesRegex(ValueError, '20w1s is not a setting'):
      grid_runner.run_grid(spec, tiny_base_config(), root, train_fn=training,
                           setting_bases={'20w1s': tiny_base_config()})

  def test_mini_imagenet_grid_needs_mini_imagenet(self):
    spec = grid_spec.make_grid('mini_imagenet')
    self.assertEqual(spec.settings, (Setting(5, 1), Setting(5, 5)))
    self.assertEqual(spec.rules + spec.baselines,
                     grid_spec.RULES + grid_spec.BASELINES)
    root = os.path.join(self.get_temp_dir(), 'grid4')
    with self.assertRaisesRegex(ValueError, '--dataset=mini_imagenet'):
      grid_runner.run_grid(spec, tiny_base_config(), root,
                           train_fn=FakeTraining())
    self.assertFalse(os.path.exists(root))


class FlagsTest(tf.test.TestCase):

  def parse(self, argv):
    flag_values = flags.FlagValues()
    results.define_flags(flag_values)
    cwd = os.getcwd()
    os.chdir(REPO)  # Nested --flagfile paths are relative to the repo root.
    try:
      flag_values(['prog'] + argv)
    finally:
      os.chdir(cwd)
    return flag_values

  def test_results_configs(self):
    mini = self.parse(['--flagfile=configs/results_mini.flags'])
    spec = results.grid_from_flags(mini)
    self.assertEqual(spec.name, 'mini')
    self.assertEqual(spec.rules, ('meta_lstm', 'sgd', 'meta_sgd'))
    self.assertEqual(spec.baselines, ('finetune', 'nearest_neighbour'))
    self.assertGreater(results.baseline_config_from_flags(mini)
                       .pretrain_seconds, 0)
    paper = self.parse(['--flagfile=configs/results_paper.flags'])
    spec = results.grid_from_flags(paper)
    self.assertLen(spec.settings, 4)
    self.assertEqual(dict(spec.inner_steps_by_shots), {1: 12, 5: 8})
    imagenet = self.parse(['--flagfile=configs/results_mini_imagenet.flags'])
    spec = results.grid_from_flags(imagenet)
    self.assertEqual(spec.name, 'mini_imagenet')
    self.assertEqual(dict(spec.inner_steps_by_shots), {1: 12, 5: 8})
    config = cli.config_from_flags(imagenet)
    self.assertEqual((config.data.dataset, config.data.image_size,
                      config.learner.channels), ('mini_imagenet', 84, 3))

  def test_lists_and_restrictions(self):
    flag_values = self.parse([
        '--workdir=/tmp/g', '--rules=meta_lstm', '--baselines=',
        '--settings=5w5s', '--finetune_learning_rates=0.1,0.2',
        '--finetune_steps=3', '--selection_episodes=9'])
    spec = results.grid_from_flags(flag_values)
    self.assertEqual((spec.rules, spec.baselines, spec.settings),
                     (('meta_lstm',), (), (Setting(5, 5),)))
    baseline_config = results.baseline_config_from_flags(flag_values)
    self.assertEqual(baseline_config.finetune_learning_rates, (0.1, 0.2))
    self.assertEqual(baseline_config.finetune_steps, (3,))
    self.assertEqual(baseline_config.selection_episodes, 9)

  def test_vinyals_grid_reads_each_settings_flagfile(self):
    omniglot = self.get_temp_dir()
    os.makedirs(os.path.join(omniglot, 'splits', 'vinyals'), exist_ok=True)
    argv = ['prog', '--flagfile=configs/results_vinyals.flags', '--seed=3']
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
      with mock.patch.dict(os.environ, {'OMNIGLOT_DIR': omniglot}):
        grid = self.parse(argv[1:])
        spec = results.grid_from_flags(grid)
        own = results.setting_flags_from_flags(argv, grid)
        configs = {name: cli.config_from_flags(f) for name, f in own.items()}
    finally:
      os.chdir(cwd)
    self.assertEqual([s.name for s in spec.settings],
                     ['5w1s', '5w5s', '20w1s', '20w5s'])
    self.assertEqual(spec.baselines, ())
    for rule in ('meta_lstm', 'sgd', 'meta_sgd'):
      for setting in ('5w1s', '20w1s'):
        self.assertTrue(spec.runs(rule, grid_spec.parse_setting(setting)))
    self.assertEqual(sorted(configs), ['20w1s', '20w5s', '5w1s', '5w5s'])
    for name, config in configs.items():
      setting = grid_spec.parse_setting(name)
      self.assertEqual((config.episode.num_ways, config.episode.num_shots),
                       tuple(setting))
      self.assertEqual(config.data.split, 'vinyals')
      self.assertEqual(config.data.split_dir,
                       os.path.join(omniglot, 'splits', 'vinyals'))
      # A step budget, so that a cell does not depend on the machine's load;
      # the grid's own command line wins over the setting's file.
      self.assertEqual(config.train.max_train_seconds, 0)
      self.assertGreater(config.train.max_steps, 1000)
      self.assertEqual(config.train.seed, 3)
      self.assertTrue(config.runtime.quiet)
      self.assertFalse(config.runtime.export)
    # The prototype heads of three settings reach every rule's cell there.
    for name in ('5w1s', '20w1s', '20w5s'):
      self.assertEqual(configs[name].inner_loop.head_init, 'prototypes')
    self.assertEqual(configs['5w5s'].inner_loop.head_init, 'learned')

  def test_setting_flagfiles_errors_name_the_flag(self):
    argv = ['prog']
    with self.assertRaisesRegex(ValueError, 'expected NwKs:PATH'):
      results.setting_flags_from_flags(
          argv, self.parse(['--setting_flagfiles=5w1s']))
    with self.assertRaisesRegex(ValueError, 'no such file'):
      results.setting_flags_from_flags(
          argv, self.parse(['--setting_flagfiles=5w1s:/no/such.flags']))
    path = os.path.join(self.get_temp_dir(), 'x.flags')
    with open(path, 'w') as f:
      f.write('--num_ways=20\n--num_shots=1\n')
    with self.assertRaisesRegex(ValueError, 'num_ways=20 --num_shots=1, not '
                                '5w1s'):
      results.setting_flags_from_flags(
          argv, self.parse([f'--setting_flagfiles=5w1s:{path}']))

  def test_bad_values_name_the_flag(self):
    with self.assertRaisesRegex(ValueError, 'finetune_steps=x'):
      results.baseline_config_from_flags(self.parse(['--finetune_steps=x']))
    with self.assertRaisesRegex(ValueError, 'inner_steps_by_shots=1-12'):
      results.grid_from_flags(self.parse(['--inner_steps_by_shots=1-12']))
