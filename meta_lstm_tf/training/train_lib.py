"""Meta-training, validation, final test and export of one run.

Shapes: B episodes per meta-batch; N ways, K shots, Q queries per class.

`train_and_evaluate(config, workdir)` is resumable: rerunning it on the same
workdir restores the last checkpoint (meta-parameters, optimizer state, step,
best validation accuracy) and continues with the same episodes, because
episode i of the training stream depends only on (seed, i).

Under a `tf.distribute` strategy (`config.train.strategy`) each meta-batch is
split across the R replicas (B / R episodes each, together exactly the
single-device batch), and every worker runs this same program: evaluation,
checkpoints and summaries included; only the chief's files stay
(`distribute.write_dir`), so a run resumes the same under any strategy.
"""

import contextlib
import json
import math
import os
import signal
import time
from typing import List, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import distribute
from meta_lstm_tf import evaluation
from meta_lstm_tf.training import file_lock
from meta_lstm_tf.training import progress as progress_lib
from meta_lstm_tf import rules
from meta_lstm_tf import runtime
from meta_lstm_tf.training import schedules
from meta_lstm_tf.training import stopping
from meta_lstm_tf.training import summaries
from meta_lstm_tf.training import train_steps
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.serving import export as serving_export


def _init_from_pretrained(rule, state, config, pools, pretrain_dir) -> None:
  """theta_0 <- the pretrained learner's conv/BN and a zero head.

  The pretraining (`baselines.pretrain`, resumable and cached in
  `pretrain_dir`) is charged to the meta-training time budget: the run's
  `train_seconds` starts at the pretraining's seconds.
  """
  train_cfg = config.train
  pretrained = baselines.pretrain(
      config,
      baselines.BaselineConfig(pretrain_steps=train_cfg.init_pretrain_steps,
                               pretrain_seconds=train_cfg.init_pretrain_seconds,
                               batch_size=train_cfg.init_pretrain_batch_size,
                               seed=train_cfg.seed), pretrain_dir, pools)
  rule.set_initial_params(
      baselines.initial_params_of(pretrained, config.learner))
  state.train_seconds.assign(float(pretrained['seconds']))
  logging.info(
      'theta_0 from the pretrained learner (%d steps, %.0f s, '
      'accuracy %.3f on a fixed meta-train sample).', pretrained['steps'],
      pretrained['seconds'], pretrained['final_accuracy'])


def train_and_evaluate(config: config_lib.ExperimentConfig, workdir: str,
                       flags_text: Optional[str] = None,
                       strategy: Optional[tf.distribute.Strategy] = None,
                       allow_config_change: bool = False) -> dict:
  """Meta-trains, validates, tests the best checkpoint and exports it.

  One process per workdir: the chief holds WORKDIR/.lock for the whole run.
  A finished run of the same config is not run again: its results are
  returned (and a missing export is made). Resuming checks that the config
  is the one the workdir holds (`workdir.check_same_experiment`) and
  restores the newest checkpoint that restores (`workdir.restore_newest`).

  Args:
    config: validated experiment config.
    workdir: run directory (see `workdir.py`); an existing run is resumed.
      Any file system `tf.io.gfile` knows (`gs://...`; not locked there,
      `file_lock.py`). Under `multi_worker` every worker must see it (a
      shared file system).
    flags_text: the command line as a flagfile, saved beside the results.
    strategy: the distribution strategy; None builds the one
      `config.train.strategy` names (`distribute.make_strategy`). Pass one
      to choose devices, e.g. a `MirroredStrategy` over logical devices.
    allow_config_change: resume even if settings that change the numbers
      differ from the workdir's config.json (the changes are recorded in
      config_changes.json); raising the budget needs no permission.

  Returns:
    The results dict also written to WORKDIR/results.json.

  Raises:
    TrainingDivergedError: NaN/Inf meta-loss (the last good checkpoint
      stays; `stopping.py`).
    TrainingInterrupted: SIGINT/SIGTERM (after writing a checkpoint).
    DirectoryBusyError: another process runs in `workdir`.
    ValueError: bad config or data, another experiment in `workdir`, or
      checkpoints that do not match their state file (before any training).
  """
  config.validate()
  train_cfg = config.train
  if strategy is None:
    # First: multi-worker strategies must exist before other TF calls.
    strategy = distribute.make_strategy(train_cfg.strategy,
                                        train_cfg.tpu_address)
  distribute.check_meta_batch_size(strategy, train_cfg.meta_batch_size)
  if (train_cfg.init_from == 'pretrained' and
      train_cfg.strategy in ('multi_worker', 'tpu')):
    raise ValueError(f'init_from=pretrained: not supported with '
                     f'strategy={train_cfg.strategy!r} (every worker would '
                     'pretrain on its own); pretrain on one machine first')
  chief = distribute.is_chief(strategy)
  # Data first: a data error in a new run leaves no workdir behind (the lock
  # would create it).
  pools = None if tf.io.gfile.isdir(workdir) else pools_lib.load_pools(config)
  lock = (file_lock.exclusive_lock(workdir, 'workdir') if chief
          else contextlib.nullcontext())
  with lock:
    finished = workdir_lib.finished_results(workdir, config)
    if finished is not None:
      logging.info('%s: finished already (results.json, same config); '
                   'nothing to train or test.', workdir)
      if train_cfg.export and chief and not _export_exists(finished):
        finished = _export_and_record(config, workdir, finished, None)
      return finished
    changes = workdir_lib.check_same_experiment(workdir, config,
                                                allow_config_change)
    # Before anything is written, as above.
    pools = pools or pools_lib.load_pools(config)
    tf.io.gfile.makedirs(workdir)
    out_dir = distribute.write_dir(workdir, strategy)
    try:
      return _train_and_evaluate(config, workdir, out_dir, flags_text,
                                 strategy, chief, pools, changes)
    finally:
      distribute.remove_write_dir(workdir, out_dir)


def _export_exists(results: dict) -> bool:
  path = results.get('export_path')
  return bool(path) and tf.io.gfile.isdir(path)


def _export_and_record(config, workdir: str, results: dict, rule) -> dict:
  """Exports the best rule and adds its path to results.json.

  results.json is written before the export (a failed export loses no
  test); stale temporary folders of a killed export go first.
  """
  export_base = os.path.join(workdir, workdir_lib.EXPORT_DIR)
  for path in workdir_lib.remove_stale_exports(export_base):
    logging.info('Removed %s, left by an interrupted export.', path)
  if rule is None:
    rule, _, _ = workdir_lib.restore_rule(workdir,
                                          results.get('best_checkpoint'))
  results = dict(results)
  results['export_path'] = serving_export.export_adapt_and_classify(
      rule, config, export_base)
  workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE),
                         results)
  return results


def _train_and_evaluate(config, workdir, out_dir, flags_text, strategy,
                        chief, pools, changes):
  """`train_and_evaluate` once the strategy exists; writes under out_dir.

  The steps: write the run's records, build (or resume) the run's state,
  meta-train with periodic validation, test the best checkpoint, export.
  """
  train_cfg = config.train
  keras.utils.set_random_seed(train_cfg.seed)
  if train_cfg.deterministic:
    tf.config.experimental.enable_op_determinism()

  valid_episodes = evaluation.batch_episodes(episodes_lib.make_eval_dataset(
      pools.meta_valid, config.episode, train_cfg.eval_episodes,
      evaluation.VALID_SEED, name='meta_valid'))
  first_valid = tf.nest.map_structure(lambda x: x[0], valid_episodes[0])

  rule, optimizer, state = _make_run_state(config, strategy)
  # Every worker resumes from the chief's checkpoints, before the managers
  # read the state file (a fallback past a corrupt checkpoint rewrites it).
  latest = workdir_lib.restore_newest(
      state, os.path.join(workdir, workdir_lib.CHECKPOINT_DIR),
      rewrite_state=chief)
  if latest:
    logging.info('Resumed from %s at step %d.', latest, int(state.step))
  # Only now that the run's state is sound are its records (re)written.
  if chief:
    _retire_previous_results(workdir)
    workdir_lib.record_config_changes(workdir, changes)
  _write_run_records(config, out_dir, flags_text)
  manager, best_manager = _make_managers(config, state, rule, out_dir)
  start_step = int(state.step)
  if not latest and train_cfg.init_from == 'pretrained':
    _init_from_pretrained(rule, state, config, pools,
                          os.path.join(out_dir, workdir_lib.PRETRAIN_DIR))

  train_step = train_steps.make_meta_train_step(
      rule, optimizer, config.inner_loop, train_cfg.clip_norm,
      jit_compile=train_cfg.jit_compile, strategy=strategy)
  eval_step = evaluation.make_eval_step(rule, config.inner_loop,
                                         jit_compile=train_cfg.jit_compile)
  diagnostics_step = evaluation.make_diagnostics_step(rule,
                                                       config.inner_loop)
  writer = summaries.Writer(os.path.join(out_dir, workdir_lib.LOG_DIR))
  if start_step == 0:
    writer.hparams(config)
    writer.episode_images(0, first_valid)

  dataset = distribute.make_train_dataset(
      strategy, pools.meta_train, config,
      start_index=start_step * train_cfg.meta_batch_size)
  # Stop decisions (time budget, signals) and the learning rate agreed by
  # every worker.
  vote = distribute.make_vote(strategy)
  agree = distribute.make_mean(strategy)
  window: List[dict] = []
  window_start = time.perf_counter()
  session_start = time.perf_counter()
  base_seconds = float(state.train_seconds)
  last_valid = float(state.best_valid_accuracy)

  def elapsed() -> float:
    return base_seconds + time.perf_counter() - session_start

  def seconds_left():
    if not train_cfg.max_train_seconds:
      return None
    return max(train_cfg.max_train_seconds - elapsed(), 0.0)

  # A bar on a terminal; a plain line every log_every steps in a log file.
  progress = progress_lib.make_progress(
      train_cfg.max_steps, train_cfg.log_every,
      enabled=not train_cfg.quiet and chief, seconds_left=seconds_left)
  progress.update(start_step)

  def save_checkpoint() -> str:
    state.train_seconds.assign(elapsed())
    return manager.save(checkpoint_number=int(state.step))

  def validate(step: int) -> dict:
    """Validates; the best accuracy so far keeps its checkpoint."""
    return _validate_and_keep_best(eval_step, valid_episodes, writer, state,
                                   best_manager, step, elapsed())

  def time_is_up() -> bool:
    return bool(train_cfg.max_train_seconds and
                elapsed() >= train_cfg.max_train_seconds)

  def learning_rate(step: int) -> float:
    """Sets (and returns) Adam's rate for the step after `step`."""
    if train_cfg.lr_schedule == 'constant':
      return train_cfg.learning_rate
    fraction, = agree([schedules.progress(train_cfg, step, elapsed())])
    rate = schedules.learning_rate(train_cfg, fraction)
    optimizer.learning_rate = rate
    return rate

  with stopping.SignalFlag() as interrupt:
    iterator = iter(dataset)
    step = start_step
    time_up, = vote([time_is_up()])
    while step < train_cfg.max_steps:
      if time_up:
        logging.info('Time budget of %.0f s reached at step %d.',
                     train_cfg.max_train_seconds, step)
        break
      rate = learning_rate(step)
      metrics = train_step(next(iterator))
      loss = float(metrics['loss'])
      if not math.isfinite(loss):
        raise stopping.TrainingDivergedError(
            f'meta-loss is {loss} at step {step + 1}; stopping. The last '
            f'good checkpoint ({manager.latest_checkpoint}) is kept; try a '
            'lower --learning_rate or --clip_norm.')
      step += 1
      state.step.assign(step)
      window.append({k: v.numpy() for k, v in metrics.items()})

      if step % train_cfg.log_every == 0 or step == train_cfg.max_steps:
        now = time.perf_counter()
        mean = {k: np.mean([w[k] for w in window], axis=0)
                for k in window[0]}
        writer.train_scalars(step, mean, rate,
                             len(window) * train_cfg.meta_batch_size /
                             max(now - window_start, 1e-9))
        writer.gate_histograms(step, diagnostics_step(first_valid))
        window, window_start = [], time.perf_counter()

      if step % train_cfg.eval_every == 0 or step == train_cfg.max_steps:
        valid = validate(step)
        last_valid = valid['accuracy']
        if train_cfg.quiet:
          logging.info('step %d: loss %.4f, valid accuracy %.4f +- %.4f '
                       '(best %.4f at %d), %.0f s', step, loss,
                       valid['accuracy'], valid['ci95'],
                       float(state.best_valid_accuracy),
                       int(state.best_step), elapsed())

      if step % train_cfg.checkpoint_every == 0:
        save_checkpoint()
      progress.update(step, values=[('loss', loss),
                                    ('acc', float(metrics['accuracy'])),
                                    ('valid_acc', last_valid)])
      time_up, interrupted = vote([time_is_up(),
                                   interrupt.signum is not None])
      if interrupted:
        writer.flush()
        # A worker that got no signal itself stops with its peers.
        raise stopping.TrainingInterrupted(interrupt.signum or signal.SIGTERM,
                                           save_checkpoint())

    if int(state.best_step) < 0 or step % train_cfg.eval_every:
      # Stopped early (time budget) or never validated: validate now.
      validate(step)
    save_checkpoint()
  writer.flush()
  train_seconds = float(state.train_seconds)

  test_start = time.perf_counter()
  test, best_checkpoint = _test_best(rule, eval_step, best_manager, workdir,
                                     pools, config)
  writer.test_scalars(step, test['accuracy'], test['ci95'], test['loss'])
  writer.flush()
  results = _results_record(config, test, state, step, strategy)
  results.update({
      'train_seconds': train_seconds,
      'test_seconds': time.perf_counter() - test_start,
      'best_checkpoint': best_checkpoint,
  })
  # The test's results first, so a failed export loses nothing (a rerun
  # only exports).
  workdir_lib.write_json(os.path.join(out_dir, workdir_lib.RESULTS_FILE),
                         results)
  if train_cfg.export and chief:
    results = _export_and_record(config, workdir, results, rule)
  logging.info('Results: %s', json.dumps(results, sort_keys=True))
  return results


def _retire_previous_results(workdir: str) -> None:
  """A finished run trained further: its results.json moves aside (to
  results_previous.json), so results.json always belongs to config.json."""
  path = os.path.join(workdir, workdir_lib.RESULTS_FILE)
  if tf.io.gfile.exists(path):
    tf.io.gfile.rename(path, os.path.join(workdir, 'results_previous.json'),
                       overwrite=True)


def _write_run_records(config, out_dir: str, flags_text: Optional[str]):
  """config.json and flags.txt next to the run's outputs."""
  workdir_lib.write_json(os.path.join(out_dir, workdir_lib.CONFIG_FILE),
                         config.to_dict())
  if flags_text is not None:
    workdir_lib.write_atomic(os.path.join(out_dir, workdir_lib.FLAGS_FILE),
                             flags_text)


def _make_run_state(config, strategy):
  """The rule, its optimizer and the resumable state.

  Returns:
    (rule, optimizer, state): `state` holds the rule, the optimizer, the
    step, the best validation accuracy and its step and the meta-training
    seconds (resume state, under `checkpoints/`).
  """
  with strategy.scope():
    rule = rules.make_rule(config)
    optimizer = keras.optimizers.Adam(config.train.learning_rate)
    optimizer.build(rule.trainable_variables)
  state = tf.train.Checkpoint(
      layer=rule, optimizer=optimizer,
      step=tf.Variable(0, dtype=tf.int64),
      best_valid_accuracy=tf.Variable(-1.0, dtype=tf.float64),
      best_step=tf.Variable(-1, dtype=tf.int64),
      train_seconds=tf.Variable(0.0, dtype=tf.float64))
  return rule, optimizer, state


def _make_managers(config, state, rule, out_dir: str):
  """(manager, best_manager): the resume state under `checkpoints/`, and
  the best rule alone under `best/`."""
  manager = tf.train.CheckpointManager(
      state, os.path.join(out_dir, workdir_lib.CHECKPOINT_DIR),
      max_to_keep=config.train.keep_checkpoints)
  best_manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(layer=rule),
      os.path.join(out_dir, workdir_lib.BEST_DIR), max_to_keep=1)
  return manager, best_manager


def _validate_and_keep_best(eval_step, valid_episodes, writer, state,
                            best_manager, step: int,
                            train_seconds: float) -> dict:
  """Validates at `step`; a new best accuracy saves the best checkpoint."""
  valid = evaluation.evaluate(eval_step, valid_episodes)
  writer.valid_scalars(step, valid['accuracy'], valid['ci95'],
                       valid['loss'], train_seconds)
  if valid['accuracy'] > float(state.best_valid_accuracy):
    state.best_valid_accuracy.assign(valid['accuracy'])
    state.best_step.assign(step)
    best_manager.save(checkpoint_number=step)
  return valid


def _test_best(rule, eval_step, best_manager, workdir: str, pools, config):
  """Restores the best checkpoint by validation accuracy and tests it.

  A worker resumed after the best step finds it in the chief's workdir.

  Returns:
    (`evaluation.evaluate`'s dict on the meta-test episodes, checkpoint).
  """
  best_checkpoint = (best_manager.latest_checkpoint or
                     tf.train.latest_checkpoint(
                         os.path.join(workdir, workdir_lib.BEST_DIR)))
  tf.train.Checkpoint(layer=rule).read(
      best_checkpoint).assert_existing_objects_matched().expect_partial()
  test = evaluation.evaluate(
      eval_step, evaluation.batch_episodes(episodes_lib.make_eval_dataset(
          pools.meta_test, config.episode, config.train.test_episodes,
          evaluation.TEST_SEED, name='meta_test')))
  return test, best_checkpoint


def _results_record(config, test: dict, state, step: int, strategy) -> dict:
  """results.json's settings and test metrics (times added by the caller)."""
  train_cfg = config.train
  return {
      'test_accuracy': test['accuracy'],
      'test_ci95': test['ci95'],
      'test_loss': test['loss'],
      'test_episodes': test['episodes'],
      'test_accuracies': test['accuracies'],
      'num_ways': config.episode.num_ways,
      'num_shots': config.episode.num_shots,
      'num_queries': config.episode.num_queries,
      'update_rule': config.meta_learner.update_rule,
      'inner_steps': config.inner_loop.inner_steps,
      'second_order': config.inner_loop.second_order,
      # As resolved on this machine (`auto` depends on the CPU).
      'conv_dtype': runtime.resolve_conv_dtype(
          config.inner_loop.conv_dtype).name,
      'init_from': train_cfg.init_from,
      'learning_rate': train_cfg.learning_rate,
      'lr_schedule': train_cfg.lr_schedule,
      'final_learning_rate': train_cfg.final_learning_rate,
      'meta_batch_size': train_cfg.meta_batch_size,
      'gate_init': config.meta_learner.gate_init,
      'inner_lr': config.meta_learner.inner_lr,
      'forget_gate_init': config.meta_learner.forget_gate_init,
      'gate_bias': config.meta_learner.gate_bias,
      'gate_bias_scale': config.meta_learner.gate_bias_scale,
      'hidden_size': config.meta_learner.hidden_size,
      'split': config.data.split,
      'dataset': config.data.dataset,
      'episode_classes': config.episode.episode_classes,
      'distinct_drawers': config.episode.distinct_drawers,
      'augment': config.episode.augment,
      'steps': step,
      'best_step': int(state.best_step),
      'valid_accuracy': float(state.best_valid_accuracy),
      'valid_episodes': train_cfg.eval_episodes,
      'seed': train_cfg.seed,
      'strategy': train_cfg.strategy,
      'num_replicas': strategy.num_replicas_in_sync,
  }
