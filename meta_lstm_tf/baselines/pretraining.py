"""Pretraining the learner as an ordinary C-way classifier.

Shapes: C meta-train classes, D drawings per class, B pretraining batch size,
P_f the learner's feature coordinates (its conv and batch-norm parameters,
`learner.feature_spec`).

The learner is trained with Adam over every meta-train class, on mini-batches
of (image, class) pairs. Its conv and batch-norm parameters do not depend on
N or K, so one pretraining serves every episode shape. Two users: the
non-meta baselines (`baselines.scoring`: nearest neighbour and fine-tuning)
and the meta-learners' `--init_from=pretrained` (theta_0 starts from the
pretrained conv/BN parameters and a zero N-way head, `initial_params_of`).

`pretrain(config, baseline_config, out_dir)` writes

    OUT/settings.json   what the pretraining depends on; a rerun with other
                        settings on the same OUT is refused
    OUT/checkpoints/    resume state (parameters, Adam, step, seconds)
    OUT/pretrained.npz  `feature_params` [P_f] and `head_params`
    OUT/pretrain.json   steps, seconds, losses; written last, so its
                        presence means done: a rerun reuses the result
"""

import dataclasses
import hashlib
import io
import json
import os
import time
from typing import Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import file_lock
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.baselines import config as baseline_config_lib
from meta_lstm_tf.baselines import pretrain_data
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import pools as pools_lib

SETTINGS_FILE = 'settings.json'
CHECKPOINT_DIR = 'checkpoints'
PARAMS_FILE = 'pretrained.npz'
RESULT_FILE = 'pretrain.json'

_CHECKPOINT_EVERY = 500


def pretrain_learner_config(learner_config: config_lib.LearnerConfig,
                            num_classes: int) -> config_lib.LearnerConfig:
  """The experiment's learner with a C-way head."""
  if (not isinstance(num_classes, (int, np.integer)) or
      isinstance(num_classes, bool) or num_classes < 2):
    raise ValueError(f'num_classes={num_classes!r}: the pretraining needs at '
                     'least 2 meta-train classes')
  return dataclasses.replace(learner_config,
                             num_ways=int(num_classes)).validate()


def feature_params_of(pretrained: dict,
                      learner_config: config_lib.LearnerConfig) -> tf.Tensor:
  """The flat conv/BN parameters [P_f] of `pretrain`'s result, checked.

  Raises:
    ValueError: no `params`, or a size that does not fit `learner_config`.
  """
  if not isinstance(pretrained, dict) or 'params' not in pretrained:
    raise ValueError("pretrained must be pretrain()'s dict, with 'params' "
                     'the flat conv/BN parameters')
  params = np.asarray(pretrained['params'], np.float32)
  expected = _spec_size(learner.feature_spec(learner_config))
  if params.shape != (expected,):
    raise ValueError(
        f"pretrained['params'] has shape {params.shape}; the learner "
        f'(num_filters={learner_config.num_filters}, '
        f'num_blocks={learner_config.num_blocks}, '
        f'channels={learner_config.channels}) has {expected} conv/BN '
        'parameters: was it pretrained with another learner config?')
  if not np.all(np.isfinite(params)):
    raise ValueError("pretrained['params'] holds NaN or Inf")
  return tf.constant(params)


def _spec_size(spec: dict) -> int:
  return int(sum(np.prod(shape) for shape in spec.values()))


def _classification_loss(flat_params, images, labels,
                         learner_config: config_lib.LearnerConfig):
  logits, _ = learner.apply(
      learner.unflatten(tf.convert_to_tensor(flat_params),
                        learner.param_spec(learner_config)),
      images, learner_config, twice_differentiable=False)
  return learner.loss_and_accuracy(logits, labels)


def make_pretrain_step(params: keras.Variable,
                       optimizer: keras.optimizers.Optimizer,
                       learner_config: config_lib.LearnerConfig):
  """Builds the compiled pretraining step.

  Args:
    params: the flat [P] parameters of the C-way learner.
    optimizer: Adam.
    learner_config: the C-way learner.

  Returns:
    step(images [B, H, W, ch], labels int32 [B]) -> (loss [], accuracy []),
    one optimizer update of `params` (batch norm with the batch's
    statistics).
  """

  def step(images, labels):
    with tf.GradientTape() as tape:
      loss, accuracy = _classification_loss(params, images, labels,
                                            learner_config)
    grad = tape.gradient(loss, params)
    optimizer.apply_gradients([(grad, params)])
    return loss, accuracy

  return tf.function(step)


def _pool_fingerprint(pool) -> str:
  names = getattr(pool, 'class_names', None)
  if names is None:
    return 'unnamed'
  return hashlib.sha256('\n'.join(names).encode()).hexdigest()[:16]


def _pretrain_settings(learner_config: config_lib.LearnerConfig,
                       baseline_config: baseline_config_lib.BaselineConfig,
                       pool, num_drawings: int) -> dict:
  """Everything the pretraining result depends on (JSON types only)."""
  return {
      'learner': dataclasses.asdict(learner_config),
      'pretrain_steps': int(baseline_config.pretrain_steps),
      'pretrain_seconds': float(baseline_config.pretrain_seconds),
      'batch_size': int(baseline_config.batch_size),
      'learning_rate': float(baseline_config.learning_rate),
      'seed': int(baseline_config.seed),
      'num_classes': int(learner_config.num_ways),
      'drawings_per_class': int(num_drawings),
      'classes': _pool_fingerprint(pool),
  }


def _check_settings(path: str, settings: dict) -> None:
  """Writes `settings`, or refuses an out_dir made with other settings."""
  if not tf.io.gfile.exists(path):
    workdir_lib.write_json(path, settings)
    return
  previous = workdir_lib.read_json(path)
  # JSON turns tuples into lists; compare in that form.
  current = json.loads(json.dumps(settings))
  if previous != current:
    changed = sorted(k for k in set(previous) | set(current)
                     if previous.get(k) != current.get(k))
    details = ', '.join(f'{k}: {previous.get(k)!r} -> {current.get(k)!r}'
                        for k in changed)
    raise ValueError(
        f'{os.path.dirname(path)!r} holds a pretraining with other settings '
        f'({details}); use another out_dir or delete it')


def _load_result(out_dir: str) -> dict:
  result = workdir_lib.read_json(os.path.join(out_dir, RESULT_FILE))
  with tf.io.gfile.GFile(os.path.join(out_dir, PARAMS_FILE), 'rb') as f:
    params = io.BytesIO(f.read())
  with np.load(params) as arrays:
    result['params'] = arrays['feature_params']
    result['head_params'] = arrays['head_params']
  return result


def pretrain(config: config_lib.ExperimentConfig,
             baseline_config: baseline_config_lib.BaselineConfig,
             out_dir: str,
             pools: Optional[class_pools.ClassPools] = None) -> dict:
  """Trains the learner as a C-way classifier over all meta-train classes.

  Resumable and cached: a rerun on the same `out_dir` resumes from the last
  checkpoint, or, once done, returns the stored result without training.

  Args:
    config: the experiment; its learner config (with `num_ways` replaced by
      C) is the network pretrained.
    baseline_config: pretraining settings.
    out_dir: where the result, checkpoints and settings go.
    pools: `pools_lib.make_class_pools(config.data)`, if already loaded.

  Returns:
    dict with `params` (float32 [P_f], the flat conv/BN parameters, in
    `learner.feature_spec` order), `head_params` (the C-way linear layer),
    `learner_config` (the C-way learner, as a dict), `num_classes`, `steps`
    and `seconds` (training steps and seconds done), `initial_loss`,
    `final_loss`, `final_accuracy` (on a fixed sample of up to 1024
    meta-train images, at the initial and at the final parameters), and
    `reused` (True when the result was read from `out_dir`).

  Raises:
    DirectoryBusyError: another process pretrains in `out_dir`.
    ValueError: invalid configs, empty `out_dir`, pools that do not fit the
      learner, or an `out_dir` holding a pretraining with other settings.
  """
  config.validate()
  baseline_config.validate()
  if not out_dir or not isinstance(out_dir, str):
    raise ValueError(f'out_dir={out_dir!r}: must be a non-empty path')
  with file_lock.exclusive_lock(out_dir, 'pretraining directory'):
    return _pretrain(config, baseline_config, out_dir, pools)


def _train_classifier(learner_config, baseline_config, images, out_dir: str):
  """The resumable classifier training of `pretrain` (checkpointed under
  out_dir/checkpoints/).

  Returns:
    (initial flat parameters, trained parameters (a variable), steps,
    seconds).
  """
  spec = learner.param_spec(learner_config)
  initial = learner.flatten(learner.init_params(learner_config,
                                                baseline_config.seed), spec)
  params = keras.Variable(initial, name='pretrain_params')
  optimizer = keras.optimizers.Adam(baseline_config.learning_rate)
  optimizer.build([params])
  state = tf.train.Checkpoint(params=params, optimizer=optimizer,
                              step=tf.Variable(0, dtype=tf.int64),
                              seconds=tf.Variable(0.0, dtype=tf.float64))
  manager = tf.train.CheckpointManager(
      state, os.path.join(out_dir, CHECKPOINT_DIR), max_to_keep=1)
  if manager.latest_checkpoint:
    state.restore(manager.latest_checkpoint).assert_consumed()

  step = int(state.step)
  limit = float(baseline_config.pretrain_seconds)
  train_step = make_pretrain_step(params, optimizer, learner_config)
  batches = iter(pretrain_data.make_pretrain_dataset(
      images, baseline_config.batch_size,
      baseline_config.seed, start_step=step))
  seconds_before = float(state.seconds)
  start = time.perf_counter()

  def seconds() -> float:
    return seconds_before + time.perf_counter() - start

  while step < baseline_config.pretrain_steps and not (
      limit and seconds() >= limit):
    images, labels = next(batches)
    loss, _ = train_step(images, labels)
    step += 1
    if step % _CHECKPOINT_EVERY == 0:
      if not np.isfinite(float(loss)):
        raise FloatingPointError(f'pretraining loss is {float(loss)} at step '
                                 f'{step}; lower learning_rate')
      state.step.assign(step)
      state.seconds.assign(seconds())
      manager.save(checkpoint_number=step)
      logging.info('Pretraining step %d (%.0f s): batch loss %.4f', step,
                   seconds(), float(loss))
  state.step.assign(step)
  state.seconds.assign(seconds())
  manager.save(checkpoint_number=step)

  return initial, params, step, float(state.seconds)


def _pretrain(config: config_lib.ExperimentConfig,
              baseline_config: baseline_config_lib.BaselineConfig,
              out_dir: str,
              pools: Optional[class_pools.ClassPools]) -> dict:
  """`pretrain`, holding the lock of `out_dir`."""
  if pools is None:
    pools = pools_lib.make_class_pools(config.data)
  pretrain_data.check_pools(pools)
  num_classes, num_drawings = pretrain_data.check_pool(
      pools.meta_train, config.learner, 'meta_train')
  learner_config = pretrain_learner_config(config.learner, num_classes)
  tf.io.gfile.makedirs(out_dir)
  _check_settings(os.path.join(out_dir, SETTINGS_FILE),
                  _pretrain_settings(learner_config, baseline_config,
                                     pools.meta_train, num_drawings))
  if (tf.io.gfile.exists(os.path.join(out_dir, RESULT_FILE)) and
      tf.io.gfile.exists(os.path.join(out_dir, PARAMS_FILE))):
    result = _load_result(out_dir)
    result['reused'] = True
    logging.info('Reusing the pretraining in %s (%d steps, %.0f s)', out_dir,
                 result['steps'], result['seconds'])
    return result

  initial, params, step, seconds = _train_classifier(
      learner_config, baseline_config, pools.meta_train.images, out_dir)
  sample_images, sample_labels = pretrain_data.loss_sample(
      pools.meta_train.images, baseline_config.seed)
  initial_loss, _ = _classification_loss(initial, sample_images,
                                         sample_labels, learner_config)
  final_loss, final_accuracy = _classification_loss(
      params, sample_images, sample_labels, learner_config)
  if not np.isfinite(float(final_loss)):
    raise FloatingPointError(f'pretraining diverged (loss {float(final_loss)})'
                             '; lower learning_rate')
  flat = np.asarray(tf.convert_to_tensor(params).numpy(), np.float32)
  num_features = _spec_size(learner.feature_spec(learner_config))
  buffer = io.BytesIO()
  np.savez(buffer, feature_params=flat[:num_features],
           head_params=flat[num_features:])
  workdir_lib.write_atomic(os.path.join(out_dir, PARAMS_FILE),
                           buffer.getvalue())
  summary = {
      'learner_config': dataclasses.asdict(learner_config),
      'num_classes': num_classes,
      'steps': step,
      'seconds': seconds,
      'initial_loss': float(initial_loss),
      'final_loss': float(final_loss),
      'final_accuracy': float(final_accuracy),
  }
  workdir_lib.write_json(os.path.join(out_dir, RESULT_FILE), summary)
  logging.info('Pretraining done: %s', json.dumps(summary, sort_keys=True))
  result = _load_result(out_dir)
  result['reused'] = False
  return result


def initial_params_of(pretrained: dict,
                      learner_config: config_lib.LearnerConfig) -> np.ndarray:
  """theta_0 [P] of the N-way learner from `pretrain`'s result.

  The pretrained conv/BN parameters, then a zero N-way head: the C-way head
  means nothing for an episode's freshly permuted labels, and a zero head
  starts every class at the same logit (as fine-tuning does).
  """
  features = feature_params_of(pretrained, learner_config).numpy()
  head_size = learner.num_params(learner_config) - features.shape[0]
  return np.concatenate([features, np.zeros([head_size], np.float32)])
