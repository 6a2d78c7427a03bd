"""Compiled meta-train and evaluation steps.

Shapes: B episodes per meta-batch, S support and Q_total query examples per
episode, T inner steps.

The meta-train step adapts the learner to each episode of a meta-batch with
`inner_loop.adapt`, takes the query cross-entropy at theta_T averaged over the
meta-batch, and applies one clipped optimizer update to every meta-parameter
(meta-LSTM weights and the learned initial learner parameters).
"""

from typing import Callable, Dict, Optional

import keras
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import distribute
from meta_lstm_tf import inner_loop
from meta_lstm_tf import rules
from meta_lstm_tf import types


def make_meta_train_step(
    rule: rules.UpdateRule, optimizer: keras.optimizers.Optimizer,
    inner_config: config_lib.InnerLoopConfig, clip_norm: float,
    jit_compile: bool = False,
    strategy: Optional[tf.distribute.Strategy] = None
) -> Callable[[types.Episode], Dict[str, tf.Tensor]]:
  """Builds the compiled meta-train step.

  Args:
    rule: the meta-learner (owns every meta-parameter).
    optimizer: a Keras optimizer (Adam in the paper).
    inner_config: inner-loop settings (T, first/second order).
    clip_norm: global-norm clipping of the meta-gradient (0 disables).
    jit_compile: compile the step with XLA.
    strategy: a distribution strategy whose `scope()` built `rule` and
      `optimizer`; None or the default strategy: one device. Under a
      strategy see `_make_distributed_meta_train_step`.

  Returns:
    step(episodes) -> metrics, where `episodes` is a `types.Episode` with a
    leading meta-batch axis B (under a strategy: an element of the
    distributed dataset, b = B / R episodes per replica); metrics hold
    `loss`, `accuracy`, `grad_norm`, `support_losses` [T + 1],
    `forget_gate_mean` [T], `input_gate_mean` [T], all over the B episodes.
  """
  if distribute.is_distributed(strategy):
    return _make_distributed_meta_train_step(
        rule, optimizer, inner_config, clip_norm, jit_compile, strategy)
  variables = rule.trainable_variables

  def step(episodes: types.Episode):
    grads, metrics = meta_gradients(rule, episodes, inner_config)
    grad_norm = tf.linalg.global_norm(grads)
    if clip_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
    optimizer.apply_gradients(zip(grads, variables))
    return dict(metrics, grad_norm=grad_norm)

  return tf.function(step, jit_compile=jit_compile)


def meta_gradients(rule: rules.UpdateRule, episodes: types.Episode,
                   inner_config: config_lib.InnerLoopConfig):
  """The meta-gradient of one meta-batch: the maths of every meta-train
  step (the CLI's and `MetaLearner.train_step`).

  Args:
    rule: the meta-learner.
    episodes: a `types.Episode` with a leading meta-batch axis B.
    inner_config: inner-loop settings.

  Returns:
    (gradients of the mean query loss w.r.t. `rule.trainable_variables`,
    metrics: `loss`, `accuracy`, `support_losses` [T + 1],
    `forget_gate_mean` [T], `input_gate_mean` [T], means over the B
    episodes).
  """
  batch_size = episodes.support_images.shape[0]
  with tf.GradientTape() as tape:
    losses, accuracies, results = inner_loop.meta_batch_losses(rule, episodes,
                                                     inner_config)
    meta_loss = tf.add_n(losses) / batch_size
  grads = tape.gradient(meta_loss, rule.trainable_variables)

  def mean_of(field):
    return tf.add_n([getattr(r, field) for r in results]) / batch_size

  metrics = {'loss': meta_loss, 'accuracy': tf.add_n(accuracies) / batch_size}
  for field in _MEAN_RESULT_FIELDS:
    metrics[field] = mean_of(field)
  return grads, metrics


_MEAN_RESULT_FIELDS = ('support_losses', 'forget_gate_mean',
                       'input_gate_mean')


def _make_distributed_meta_train_step(rule, optimizer, inner_config,
                                      clip_norm, jit_compile, strategy):
  """The meta-train step of `make_meta_train_step` under a strategy.

  Each of the R replicas adapts its b = B / R episodes and differentiates
  sum(its query losses) / B, so the SUM of the replicas' gradients is the
  gradient of the mean over all B episodes, as on one device. The step
  all-reduces the gradients itself (one collective, together with the metric
  sums), clips the global norm of the reduced gradient (clipping before the
  reduction would clip each replica's share instead, and differ from one
  device), and every replica applies the same single update to its copy of
  the variables.

  Keras 3 optimizers all-reduce (SUM) the gradients given to
  `apply_gradients` in a replica context. These are reduced already, so
  `optimizer`'s own reduction is switched off (it would multiply them by R);
  `tests/test_distribute.py` checks the update against one device.
  """
  variables = rule.trainable_variables
  if not optimizer.built:
    # Slots must be mirrored variables made now, not inside a replica.
    with strategy.scope():
      optimizer.build(variables)
  _disable_optimizer_all_reduce(optimizer)
  num_replicas = strategy.num_replicas_in_sync

  def replica_gradients(episodes: types.Episode):
    global_batch = episodes.support_images.shape[0] * num_replicas
    with tf.GradientTape() as tape:
      losses, accuracies, results = inner_loop.meta_batch_losses(rule, episodes,
                                                       inner_config)
      scaled_loss = tf.add_n(losses) / global_batch
    grads = tape.gradient(scaled_loss, variables)
    sums = {'loss': tf.add_n(losses), 'accuracy': tf.add_n(accuracies)}
    for field in _MEAN_RESULT_FIELDS:
      sums[field] = tf.add_n([getattr(r, field) for r in results])
    return grads, sums

  if jit_compile:
    # Only the adaptation is compiled: collectives and the optimizer update
    # stay outside XLA, where every strategy supports them.
    replica_gradients = tf.function(replica_gradients, jit_compile=True)

  def replica_step(episodes: types.Episode):
    global_batch = episodes.support_images.shape[0] * num_replicas
    grads, sums = replica_gradients(episodes)
    grads, sums = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, (grads, sums))
    grad_norm = tf.linalg.global_norm(grads)
    if clip_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
    optimizer.apply_gradients(zip(grads, variables))
    metrics = {name: value / global_batch for name, value in sums.items()}
    metrics['grad_norm'] = grad_norm
    return metrics

  def step(distributed_episodes):
    metrics = strategy.run(replica_step, args=(distributed_episodes,))
    # Every replica holds the same reduced metrics: take this worker's first.
    return tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0], metrics)

  return tf.function(step)


def _disable_optimizer_all_reduce(optimizer: keras.optimizers.Optimizer):
  """Makes `apply_gradients` take already all-reduced gradients as they are.

  Raises:
    TypeError: the optimizer has no such reduction hook (a Keras version
      whose replica-context behaviour is unknown here).
  """
  hook = '_all_reduce_sum_gradients'
  if not callable(getattr(optimizer, hook, None)):
    raise TypeError(
        f'{type(optimizer).__name__} has no {hook}(): cannot tell whether '
        'apply_gradients all-reduces gradients under a distribution strategy')
  setattr(optimizer, hook, lambda grads_and_vars: list(grads_and_vars))
