"""Meta-training, validation, final test and export of one run.

Shapes: B episodes per meta-batch; N ways, K shots, Q queries per class.

`train_and_evaluate(config, workdir)` is resumable: rerunning it on the same
workdir restores the last checkpoint (meta-parameters, optimizer state, step,
best validation accuracy) and continues with the same episodes, because
episode i of the training stream depends only on (seed, i).

Under a `tf.distribute` strategy (`config.runtime.strategy`) each meta-batch is
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
from typing import Optional

from absl import logging
import keras
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import actions
from meta_lstm_tf.training import checkpoints
from meta_lstm_tf.training import distribute
from meta_lstm_tf import evaluation
from meta_lstm_tf import file_lock
from meta_lstm_tf.training import progress as progress_lib
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
  restores the newest checkpoint that restores (`checkpoints.restore_newest`).

  Args:
    config: validated experiment config.
    workdir: run directory (see `workdir.py`); an existing run is resumed.
      Any file system `tf.io.gfile` knows (`gs://...`; not locked there,
      `file_lock.py`). Under `multi_worker` every worker must see it (a
      shared file system).
    flags_text: the command line as a flagfile, saved beside the results.
    strategy: the distribution strategy; None builds the one
      `config.runtime.strategy` names (`distribute.make_strategy`). Pass one
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
    strategy = distribute.make_strategy(config.runtime.strategy,
                                        config.runtime.tpu_address)
  distribute.check_meta_batch_size(strategy, train_cfg.meta_batch_size)
  if (train_cfg.init_from == 'pretrained' and
      config.runtime.strategy in ('multi_worker', 'tpu')):
    raise ValueError(f'init_from=pretrained: not supported with '
                     f'strategy={config.runtime.strategy!r} (every worker would '
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
      if config.runtime.export and chief and not _export_exists(finished):
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
    rule, _, _ = checkpoints.restore_rule(workdir,
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

  The steps: build (or resume) the run's state, write the run's records,
  meta-train with periodic validation (`_meta_train`), test the best
  checkpoint, export.
  """
  keras.utils.set_random_seed(config.train.seed)
  if config.train.deterministic:
    tf.config.experimental.enable_op_determinism()
  rule, optimizer, state = checkpoints.make_run_state(config, strategy)
  # Every worker resumes from the chief's checkpoints, before the managers
  # read the state file (a fallback past a corrupt checkpoint rewrites it).
  latest = checkpoints.restore_newest(
      state, os.path.join(workdir, workdir_lib.CHECKPOINT_DIR),
      rewrite_state=chief)
  if latest:
    logging.info('Resumed from %s at step %d.', latest, int(state.step))
  # Only now that the run's state is sound are its records (re)written.
  if chief:
    workdir_lib.retire_previous_results(workdir)
    workdir_lib.record_config_changes(workdir, changes)
  workdir_lib.write_run_records(config, out_dir, flags_text)
  manager, best_manager = checkpoints.make_managers(
      state, rule, out_dir, config.runtime.keep_checkpoints)
  if not latest and config.train.init_from == 'pretrained':
    _init_from_pretrained(rule, state, config, pools,
                          os.path.join(out_dir, workdir_lib.PRETRAIN_DIR))
  eval_step = evaluation.make_eval_step(
      rule, config.inner_loop, jit_compile=config.runtime.jit_compile)
  writer = summaries.Writer(os.path.join(out_dir, workdir_lib.LOG_DIR))
  step = _meta_train(config, rule, optimizer, state, strategy, chief, pools,
                     eval_step, writer, manager, best_manager)
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
  if config.runtime.export and chief:
    results = _export_and_record(config, workdir, results, rule)
  logging.info('Results: %s', json.dumps(results, sort_keys=True))
  return results


def _meta_train(config, rule, optimizer, state, strategy, chief, pools,
                eval_step, writer, manager, best_manager) -> int:
  """The loop: a meta-train step, then each action due at the new step
  (`actions.py`: log, validate-and-keep-best, checkpoint), then the stop
  vote. Returns the last step; the state is checkpointed at it.

  Raises:
    TrainingDivergedError, TrainingInterrupted (`stopping.py`).
  """
  train_cfg, runtime_cfg = config.train, config.runtime
  valid_batches = evaluation.batch_episodes(episodes_lib.make_eval_dataset(
      pools.meta_valid, config.episode, train_cfg.eval_episodes,
      evaluation.VALID_SEED, name='meta_valid'))
  first_valid = tf.nest.map_structure(lambda x: x[0], valid_batches[0])
  start_step = int(state.step)
  if start_step == 0:
    writer.hparams(config)
    writer.episode_images(0, first_valid)
  train_step = train_steps.make_meta_train_step(
      rule, optimizer, config.inner_loop, train_cfg.clip_norm,
      jit_compile=runtime_cfg.jit_compile, strategy=strategy)
  diagnostics_step = evaluation.make_diagnostics_step(rule,
                                                      config.inner_loop)
  clock = actions.Clock(float(state.train_seconds))
  last = train_cfg.max_steps
  log = actions.LogAction(writer, runtime_cfg.log_every, last,
                          train_cfg.meta_batch_size,
                          lambda: diagnostics_step(first_valid))
  validate = actions.ValidateAndKeepBest(
      eval_step, valid_batches, writer, state, best_manager, clock,
      train_cfg.eval_every, last, quiet=runtime_cfg.quiet,
      keep_last=train_cfg.trainval)
  checkpoint = actions.CheckpointAction(manager, state, clock,
                                        runtime_cfg.checkpoint_every)
  learning_rate = _make_learning_rate(train_cfg, optimizer, clock,
                                      distribute.make_mean(strategy))
  progress = _make_progress(config, chief, clock)
  progress.update(start_step)
  iterator = iter(distribute.make_train_dataset(
      strategy, pools.meta_train, config,
      start_index=start_step * train_cfg.meta_batch_size))
  with stopping.SignalFlag() as interrupt:
    stop = actions.StopVote(distribute.make_vote(strategy), clock,
                            train_cfg.max_train_seconds, interrupt)
    step, (time_up, _) = start_step, stop()
    while step < last and not time_up:
      rate = learning_rate(step)
      metrics = train_step(next(iterator))
      loss = _finite_loss(metrics, step, manager)
      step += 1
      state.step.assign(step)
      log.record(metrics)
      if log.due(step):
        log(step, rate)
      if validate.due(step):
        validate(step, loss)
      if checkpoint.due(step):
        checkpoint(step)
      progress.update(step, values=[('loss', loss),
                                    ('acc', float(metrics['accuracy'])),
                                    ('valid_acc', validate.last_accuracy)])
      time_up, interrupted = stop()
      if interrupted:
        writer.flush()
        # A worker that got no signal itself stops with its peers.
        raise stopping.TrainingInterrupted(interrupt.signum or signal.SIGTERM,
                                           checkpoint(step))
    if time_up:
      logging.info('Time budget of %.0f s reached at step %d.',
                   train_cfg.max_train_seconds, step)
    if int(state.best_step) < 0 or step % train_cfg.eval_every:
      # Stopped early (time budget) or never validated: validate now.
      validate(step)
    checkpoint(step)
  writer.flush()
  return step


def _finite_loss(metrics: dict, step: int, manager) -> float:
  """The step's meta-loss; raises `TrainingDivergedError` on NaN / Inf."""
  loss = float(metrics['loss'])
  if not math.isfinite(loss):
    raise stopping.TrainingDivergedError(
        f'meta-loss is {loss} at step {step + 1}; stopping. The last '
        f'good checkpoint ({manager.latest_checkpoint}) is kept; try a '
        'lower --learning_rate or --clip_norm.')
  return loss


def _make_learning_rate(train_cfg, optimizer, clock, agree):
  """rate(step): sets (and returns) Adam's rate for the step after `step`,
  the run's progress agreed by every worker (`agree`)."""

  def rate(step: int) -> float:
    if train_cfg.lr_schedule == 'constant':
      return train_cfg.learning_rate
    fraction, = agree([schedules.progress(train_cfg, step, clock.elapsed())])
    value = schedules.learning_rate(train_cfg, fraction)
    optimizer.learning_rate = value
    return value

  return rate


def _make_progress(config, chief: bool, clock):
  """A bar on a terminal; a plain line every log_every steps in a log
  file; nothing with --quiet or on other workers."""
  max_seconds = config.train.max_train_seconds

  def seconds_left():
    if not max_seconds:
      return None
    return max(max_seconds - clock.elapsed(), 0.0)

  return progress_lib.make_progress(
      config.train.max_steps, config.runtime.log_every,
      enabled=not config.runtime.quiet and chief, seconds_left=seconds_left)


def _test_best(rule, eval_step, best_manager, workdir: str, pools, config):
  """Restores the best checkpoint by validation accuracy and tests it.

  A worker resumed after the best step finds it in the chief's workdir.

  Returns:
    (`evaluation.evaluate`'s dict on the meta-test episodes, checkpoint).
  """
  best_checkpoint = (best_manager.latest_checkpoint or
                     tf.train.latest_checkpoint(
                         os.path.join(workdir, workdir_lib.BEST_DIR)))
  checkpoints.rule_checkpoint(rule).read(
      best_checkpoint).assert_existing_objects_matched().expect_partial()
  test = evaluation.evaluate(
      eval_step, evaluation.batch_episodes(episodes_lib.make_eval_dataset(
          pools.meta_test, config.episode, config.train.test_episodes,
          evaluation.TEST_SEED, name='meta_test')))
  return test, best_checkpoint


def _results_record(config, test: dict, state, step: int, strategy) -> dict:
  """results.json's settings (`config.recorded_settings`) and test metrics
  (times added by the caller)."""
  record = config_lib.recorded_settings(config)
  # As resolved on this machine (`auto` depends on the CPU).
  record['conv_dtype'] = runtime.resolve_conv_dtype(
      config.inner_loop.conv_dtype).name
  record.update({
      'test_accuracy': test['accuracy'],
      'test_ci95': test['ci95'],
      'test_loss': test['loss'],
      'test_episodes': test['episodes'],
      'test_accuracies': test['accuracies'],
      'steps': step,
      'best_step': int(state.best_step),
      'valid_accuracy': float(state.best_valid_accuracy),
      'valid_episodes': config.train.eval_episodes,
      'num_replicas': strategy.num_replicas_in_sync,
  })
  return record
