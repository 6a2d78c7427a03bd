"""Running a grid: every cell (resumed or skipped when finished), the
baselines, then the report.

Layout of a grid root (ROOT):

    ROOT/<rule>_<N>w<K>s/        one `train_lib.train_and_evaluate` workdir per
                                 update rule and setting (see `workdir.py`)
    ROOT/pretrain/               the baselines' one pretraining on all
                                 meta-train classes (`baselines.pretrain`)
    ROOT/baselines_<N>w<K>s.json the baselines' results for one setting
    ROOT/results.md              the report: tables, command, budget, machine
    ROOT/results.json            every raw number of the report
    ROOT/valid_curves.png        validation accuracy against training time

Every file goes through `tf.io.gfile` (`workdir.py`), so ROOT may be on any
file system TensorFlow knows (`gs://...`; not locked there, `file_lock.py`).

Every cell of one setting is tested on the same fixed meta-test episodes
(`evaluation.TEST_SEED`), so the rows of a column are directly comparable.
Rerunning the same command skips finished cells and resumes unfinished ones.
"""

import dataclasses
import datetime
import json
import os
import time
from typing import Callable, Dict, List, Optional

from absl import logging
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import file_lock
from meta_lstm_tf.training import train_lib
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.grid import curves as curves_lib
from meta_lstm_tf.grid import report as grid_report
from meta_lstm_tf.grid import spec as grid_spec

def _baseline_relevant(config: config_lib.ExperimentConfig) -> dict:
  """The parts of a config the baselines' results depend on."""
  relevant = workdir_lib.relevant_config(config.to_dict())
  relevant.pop('meta_learner')
  relevant['train'] = {'test_episodes': config.train.test_episodes}
  return relevant


def run_rule_cell(cell: grid_spec.Cell, flags_text: Optional[str] = None,
                  train_fn: Optional[Callable] = None) -> dict:
  """The cell's results: read when finished, else trained (or resumed).

  Args:
    cell: from `grid_spec.expand_grid`.
    flags_text: the grid's flags (`cli.flags_as_text`), saved per cell with
      the cell's overrides.
    train_fn: `train_lib.train_and_evaluate` (tests pass a fake).
  """
  results = workdir_lib.finished_results(cell.workdir, cell.config)
  if results is not None:
    logging.info('%s: finished, skipped.', cell.workdir)
    return results
  train_fn = train_fn or train_lib.train_and_evaluate
  logging.info('%s: training (%s, %s).', cell.workdir, cell.rule,
               cell.setting.title)
  return train_fn(cell.config, cell.workdir,
                  grid_spec.cell_flags_text(flags_text, cell))


def baseline_config_dict(baseline_config) -> dict:
  return json.loads(json.dumps(dataclasses.asdict(baseline_config)))


def run_baselines(spec: grid_spec.GridSpec, base: config_lib.ExperimentConfig,
                  baseline_config, root: str, pools=None,
                  pretrain_fn: Optional[Callable] = None,
                  evaluate_fn: Optional[Callable] = None,
                  setting_bases: Optional[Dict[str, config_lib.ExperimentConfig]]
                  = None) -> Dict[str, Dict[str, dict]]:
  """Pretrains once, then evaluates the baselines on every setting.

  Results per setting are cached in ROOT/baselines_<N>w<K>s.json (reused
  while the experiment and baseline configs are unchanged); the pretraining
  is cached in ROOT/pretrain by `baselines.pretrain`.

  Args:
    spec: the grid; nothing runs when `spec.baselines` is empty.
    base: the grid's base config (data, learner, episode queries, budgets).
    baseline_config: `baselines.BaselineConfig`.
    root: the grid root.
    pools: `class_pools.ClassPools` (None: built from `base.data` when needed).
    pretrain_fn, evaluate_fn: `baselines.pretrain` and
      `baselines.evaluate_baselines` (tests pass fakes).
    setting_bases: see `grid_spec.expand_grid`; a setting's episodes and test
      come from its own config (the pretraining from `base`).

  Returns:
    {setting name: {baseline: its results dict}}.
  """
  if not spec.baselines:
    return {}
  pretrain_fn = pretrain_fn or baselines.pretrain
  evaluate_fn = evaluate_fn or baselines.evaluate_baselines
  pretrained = None
  by_setting = {}
  for setting in spec.settings:
    own = grid_spec.setting_base(base, setting, setting_bases)
    config = grid_spec.cell_config(own, own.meta_learner.update_rule, setting)
    key = {'config': _baseline_relevant(config),
           'baseline_config': baseline_config_dict(baseline_config)}
    path = os.path.join(root, f'baselines_{setting.name}.json')
    cached = None
    if tf.io.gfile.exists(path):
      cached = workdir_lib.read_json(path)
    if (cached and cached.get('key') == key and
        all(b in cached['results'] for b in spec.baselines)):
      logging.info('%s: finished, skipped.', path)
      results = cached['results']
    else:
      if pools is None:
        pools = pools_lib.make_episode_pools(base.data, base.episode)
      if pretrained is None:
        logging.info('Baselines: pretraining in %s.',
                     os.path.join(root, grid_spec.PRETRAIN_DIR))
        pretrained = pretrain_fn(base, baseline_config,
                                 os.path.join(root, grid_spec.PRETRAIN_DIR),
                                 pools=pools)
      logging.info('Baselines: evaluating %s.', setting.title)
      results = evaluate_fn(config, baseline_config, pretrained, pools=pools)
      results = json.loads(json.dumps(results))
      workdir_lib.write_json(path, {'key': key, 'results': results})
    by_setting[setting.name] = {b: results[b] for b in spec.baselines}
  return by_setting


def run_grid(spec: grid_spec.GridSpec, base: config_lib.ExperimentConfig,
             root: str,
             baseline_config=None, command: str = '',
             flags_text: Optional[str] = None,
             train_fn: Optional[Callable] = None,
             pretrain_fn: Optional[Callable] = None,
             evaluate_baselines_fn: Optional[Callable] = None,
             pools=None,
             setting_bases: Optional[Dict[str, config_lib.ExperimentConfig]]
             = None,
             setting_flags_texts: Optional[Dict[str, str]] = None) -> dict:
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
    baseline_config: `baselines.BaselineConfig` (needed when
      `spec.baselines` is not empty).
    command: the command line, quoted in the report.
    flags_text: the command's flags as a flagfile, saved per cell.
    train_fn, pretrain_fn, evaluate_baselines_fn, pools: see
      `run_rule_cell` and `run_baselines` (tests pass fakes).
    setting_bases: {setting name: config}: settings with their own base
      config (budget, queries, learner, ...; `grid_spec.expand_grid`).
    setting_flags_texts: {setting name: flagfile text} saved in the cells of
      settings with their own config, instead of `flags_text`.

  Returns:
    The report, as written to ROOT/results.json.

  Raises:
    DirectoryBusyError: another process runs a grid in `root`.
    ValueError: a bad grid or config.
  """
  spec.validate()
  base.validate()
  setting_bases = dict(setting_bases or {})
  names = [s.name for s in spec.settings]
  for name, config in setting_bases.items():
    if name not in names:
      raise ValueError(f'setting_bases: {name} is not a setting of the grid '
                       f'({", ".join(names)})')
    config.validate()
  dataset = grid_spec.GRID_DATASETS.get(spec.name)
  if dataset and base.data.dataset != dataset:
    raise ValueError(f'grid={spec.name}: needs --dataset={dataset} (got '
                     f'{base.data.dataset})')
  if spec.baselines and baseline_config is None:
    raise ValueError('baselines requested but no baseline_config given')
  with file_lock.exclusive_lock(root, 'grid root'):
    return _run_grid(spec, base, root, baseline_config, command, flags_text,
                     train_fn, pretrain_fn, evaluate_baselines_fn, pools,
                     setting_bases, setting_flags_texts)


def _run_grid(spec, base, root, baseline_config, command, flags_text,
              train_fn, pretrain_fn, evaluate_baselines_fn, pools,
              setting_bases, setting_flags_texts) -> dict:
  """`run_grid`, validated, holding the grid root's lock."""
  start = time.perf_counter()
  cells = grid_spec.expand_grid(spec, base, root, setting_bases)
  report = {
      'grid': spec.name,
      'settings': [list(s) for s in spec.settings],
      'rules': list(spec.rules),
      'baselines': list(spec.baselines),
      'inner_steps_by_shots': [list(p) for p in spec.inner_steps_by_shots],
      'cells': [grid_spec.cell_name(c.rule, c.setting) for c in cells],
      'command': command,
      'budget': grid_report.describe_budget(spec, base, baseline_config,
                                           setting_bases),
      'config': base.to_dict(),
      'setting_configs': {name: config.to_dict()
                          for name, config in setting_bases.items()},
      'baseline_config': (baseline_config_dict(baseline_config)
                          if baseline_config is not None else None),
      'machine': grid_report.machine_info(),
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
            curves_lib.CurvePoint(*p) for p in report['curves'][row['workdir']]]
      else:
        levels[row['setting']][row['method']] = row['valid_accuracy']
    curves_lib.write_valid_curves_plot(curves, levels, spec.settings,
                            os.path.join(root, grid_spec.PLOT_FILE))
    workdir_lib.write_json(os.path.join(root, grid_spec.RESULTS_JSON), report)
    workdir_lib.write_atomic(os.path.join(root, grid_spec.RESULTS_MD),
                             grid_report.render_report(report))

  baselines = run_baselines(spec, base, baseline_config, root, pools=pools,
                            pretrain_fn=pretrain_fn,
                            evaluate_fn=evaluate_baselines_fn,
                            setting_bases=setting_bases)
  for setting in spec.settings:
    for baseline, results in baselines.get(setting.name, {}).items():
      report['rows'].append(grid_report.baseline_row(baseline, setting, results))
  for cell in cells:
    results = run_rule_cell(
        cell, (setting_flags_texts or {}).get(cell.setting.name, flags_text),
        train_fn)
    row = grid_report.rule_row(cell.rule, cell.setting, results,
                              cell.workdir, root)
    report['rows'].append(row)
    report['curves'][row['workdir']] = [
        list(p) for p in curves_lib.read_valid_curve(cell.workdir)]
    write_report()
  if not cells:
    write_report()
  return report


def _sorted_rows(rows: List[dict], spec: grid_spec.GridSpec) -> List[dict]:
  methods = list(spec.rules) + list(spec.baselines)
  settings = [s.name for s in spec.settings]
  return sorted(rows, key=lambda r: (settings.index(r['setting']),
                                     methods.index(r['method'])))
