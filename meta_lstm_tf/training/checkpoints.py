"""A run's checkpoints: what they hold, under which keys, and restoring.

    WORKDIR/checkpoints/   the resume state (`make_run_state`): the rule,
                           the optimizer, the step, the best validation
                           accuracy and its step, the meta-training seconds
    WORKDIR/best/          the best rule by validation accuracy, alone

The rule is saved under one key, `RULE_KEY`, and only `rule_checkpoint`
names it: checkpoints of every earlier version used it, so they restore
(`tests/test_checkpoints.py` checks today's checkpoints against the keys
and shapes an earlier release wrote).
"""

import os
import re
from typing import List, Optional, Tuple

from absl import logging
import keras
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules
from meta_lstm_tf.training import workdir as workdir_lib

# The checkpoint key of the update rule (the meta-learner). Never change it:
# every run ever written holds its rule there.
RULE_KEY = 'layer'


def rule_checkpoint(rule: rules.UpdateRule, **others) -> tf.train.Checkpoint:
  """A `tf.train.Checkpoint` of `rule` under `RULE_KEY`, with `others`."""
  return tf.train.Checkpoint(**{RULE_KEY: rule}, **others)


def make_run_state(config: config_lib.ExperimentConfig, strategy):
  """The rule, its optimizer and the resumable state.

  Returns:
    (rule, optimizer, state): `state` holds the rule, the optimizer, the
    step, the best validation accuracy and its step and the meta-training
    seconds (resume state, under `checkpoints/`).
  """
  with strategy.scope():
    rule = rules.make_rule(config)
    optimizer = keras.optimizers.Adam(config.train.learning_rate,
                                      epsilon=config.train.adam_epsilon)
    optimizer.build(rule.trainable_variables)
  state = rule_checkpoint(
      rule, optimizer=optimizer,
      step=tf.Variable(0, dtype=tf.int64),
      best_valid_accuracy=tf.Variable(-1.0, dtype=tf.float64),
      best_step=tf.Variable(-1, dtype=tf.int64),
      train_seconds=tf.Variable(0.0, dtype=tf.float64))
  return rule, optimizer, state


def make_managers(state: tf.train.Checkpoint, rule: rules.UpdateRule,
                  out_dir: str, keep_checkpoints: int):
  """(manager, best_manager): the resume state under `checkpoints/`, and
  the best rule alone under `best/`."""
  manager = tf.train.CheckpointManager(
      state, os.path.join(out_dir, workdir_lib.CHECKPOINT_DIR),
      max_to_keep=keep_checkpoints)
  best_manager = tf.train.CheckpointManager(
      rule_checkpoint(rule), os.path.join(out_dir, workdir_lib.BEST_DIR),
      max_to_keep=1)
  return manager, best_manager


class CheckpointStateError(ValueError):
  """The checkpoint state file does not match the checkpoint files."""


def _checkpoint_files(checkpoint_dir: str) -> List[str]:
  """Prefixes of the complete-looking checkpoints present, oldest first."""
  prefixes = []
  for name in tf.io.gfile.listdir(checkpoint_dir):
    match = re.fullmatch(r'(ckpt-(\d+))\.index', name)
    if match:
      prefixes.append((int(match.group(2)),
                       os.path.join(checkpoint_dir, match.group(1))))
  return [p for _, p in sorted(prefixes)]


def resume_candidates(checkpoint_dir: str) -> List[str]:
  """The checkpoints a run may resume from, newest first.

  Reads the manager's state file (`checkpoint`) and checks it against the
  files present.

  Raises:
    CheckpointStateError: checkpoint files are present but the state file
      is missing, unreadable, or names checkpoints that are not there;
      starting over would silently drop the run (and its best checkpoint).
  """
  if not tf.io.gfile.isdir(checkpoint_dir):
    return []
  present = _checkpoint_files(checkpoint_dir)
  state_path = os.path.join(checkpoint_dir, 'checkpoint')
  names = ', '.join(os.path.basename(p) for p in present)
  fix = ('restore the state file, or move the checkpoints away to start '
         'the run over')
  try:
    state = tf.train.get_checkpoint_state(checkpoint_dir)
  except (tf.errors.OpError, ValueError) as e:
    raise CheckpointStateError(
        f'{state_path} is unreadable ({type(e).__name__}) but {names} '
        f'{"are" if len(present) > 1 else "is"} present: {fix}') from None
  if state is None and tf.io.gfile.exists(state_path):
    # get_checkpoint_state logs a parse error and returns None.
    raise CheckpointStateError(
        f'{state_path} is unreadable but {names or "no checkpoint"} '
        f'{"are" if len(present) > 1 else "is"} present: {fix}')
  if state is None:
    if present:
      raise CheckpointStateError(
          f'{state_path} is missing but {names} '
          f'{"are" if len(present) > 1 else "is"} present: {fix}')
    return []
  listed = list(state.all_model_checkpoint_paths) or [
      state.model_checkpoint_path]
  listed = [p if os.path.isabs(p) or not workdir_lib.is_local(p)
            else os.path.join(checkpoint_dir, p) for p in listed if p]
  missing = [p for p in listed if not tf.io.gfile.exists(p + '.index')]
  if missing:
    raise CheckpointStateError(
        f'{state_path} names {", ".join(os.path.basename(p) for p in missing)}'
        f', which {"are" if len(missing) > 1 else "is"} not in '
        f'{checkpoint_dir} (present: {names or "none"}): {fix}')
  return sorted(set(listed), key=lambda p: int(p.rsplit('-', 1)[1]),
                reverse=True)


def restore_newest(checkpoint: tf.train.Checkpoint, checkpoint_dir: str,
                   rewrite_state: bool = True) -> Optional[str]:
  """Restores the newest checkpoint of `checkpoint_dir` that restores.

  A checkpoint that fails to read (truncated or corrupt files) is skipped
  with a warning naming it, and the next older one is tried; the state file
  is then rewritten (with `rewrite_state`; a multi-worker run's chief) to
  list only what restores, so the run's manager keeps going from there.

  Returns:
    The prefix restored, or None for a fresh run.

  Raises:
    CheckpointStateError: see `resume_candidates`; or no kept checkpoint
      restores.
  """
  candidates = resume_candidates(checkpoint_dir)
  failures = []
  for i, prefix in enumerate(candidates):
    try:
      checkpoint.restore(prefix).assert_existing_objects_matched()
    # A damaged file fails in many ways (DataLossError, IndexError for a
    # short read, AssertionError for missing objects...): any error here
    # means "does not restore".
    except Exception as e:  # pylint: disable=broad-except
      reason = str(e).strip().splitlines()[0] if str(e).strip() else ''
      failures.append(f'{os.path.basename(prefix)} ({type(e).__name__}: '
                      f'{reason[:200]})')
      logging.warning('Checkpoint %s does not restore (%s: %s); trying the '
                      'previous one.', prefix, type(e).__name__, reason[:200])
      continue
    if failures and rewrite_state:
      logging.warning('Resumed from the older checkpoint %s; %s did not '
                      'restore.', prefix, '; '.join(failures))
      kept = candidates[i:]
      tf.compat.v1.train.update_checkpoint_state(
          checkpoint_dir, model_checkpoint_path=kept[0],
          all_model_checkpoint_paths=list(reversed(kept)))
    return prefix
  if candidates:
    raise CheckpointStateError(
        f'no checkpoint in {checkpoint_dir} restores: {"; ".join(failures)}')
  return None


def restore_rule(workdir: str, checkpoint: Optional[str] = None
                 ) -> Tuple[rules.UpdateRule, config_lib.ExperimentConfig,
                            str]:
  """Restores the update rule (the meta-learner) of a training run.

  The rule is read under `RULE_KEY` (`rule_checkpoint`), the key every
  version has written, so older runs restore too.

  Args:
    workdir: the training workdir.
    checkpoint: a checkpoint prefix; default the best checkpoint, else the
      latest training checkpoint.

  Returns:
    (rule, config, checkpoint path restored).
  """
  config = workdir_lib.load_config(workdir)
  rule = rules.make_rule(config)
  if checkpoint is None:
    checkpoint = (tf.train.latest_checkpoint(os.path.join(workdir, workdir_lib.BEST_DIR)) or
                  tf.train.latest_checkpoint(
                      os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)))
  if checkpoint is None:
    raise FileNotFoundError(f'no checkpoint in {workdir!r}')
  rule_checkpoint(rule).read(checkpoint).expect_partial()
  return rule, config, checkpoint
