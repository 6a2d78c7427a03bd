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
  """Builds the compiled meta-train step: one path for every strategy.

  Each of the R replicas (R = 1 on one device) adapts its b = B / R
  episodes and differentiates sum(its query losses) / B (`meta_gradients`),
  so the SUM of the replicas' gradients is the gradient of the mean over all
  B episodes, as on one device. Under a strategy the step all-reduces the
  gradients itself (one collective, together with the metrics); then, on
  every path, it clips the global norm of the (reduced) gradient (clipping
  before the reduction would clip each replica's share instead) and applies
  one update (`_update`).

  Keras 3 optimizers all-reduce (SUM) the gradients given to
  `apply_gradients` in a replica context. These are reduced already, so
  `optimizer`'s own reduction is switched off under a strategy (it would
  multiply them by R); `tests/test_distribute.py` checks the update against
  one device.

  Args:
    rule: the meta-learner (owns every meta-parameter).
    optimizer: a Keras optimizer (Adam in the paper).
    inner_config: inner-loop settings (T, first/second order).
    clip_norm: global-norm clipping of the meta-gradient (0 disables).
    jit_compile: compile the step with XLA (under a strategy only the
      adaptation: collectives and the update stay outside XLA, where every
      strategy supports them).
    strategy: a distribution strategy whose `scope()` built `rule` and
      `optimizer`; None or the default strategy: one device.

  Returns:
    step(episodes) -> metrics, where `episodes` is a `types.Episode` with a
    leading meta-batch axis B (under a strategy: an element of the
    distributed dataset, b = B / R episodes per replica); metrics hold
    `loss`, `accuracy`, `grad_norm`, `support_losses` [T + 1],
    `forget_gate_mean` [T], `input_gate_mean` [T], all over the B episodes.
  """
  variables = rule.trainable_variables
  distributed = distribute.is_distributed(strategy)
  num_replicas = strategy.num_replicas_in_sync if distributed else 1
  if distributed:
    if not optimizer.built:
      # Slots must be mirrored variables made now, not inside a replica.
      with strategy.scope():
        optimizer.build(variables)
    _disable_optimizer_all_reduce(optimizer)

  def replica_gradients(episodes: types.Episode):
    global_batch = episodes.support_images.shape[0] * num_replicas
    return meta_gradients(rule, episodes, inner_config, global_batch)

  if distributed and jit_compile:
    replica_gradients = tf.function(replica_gradients, jit_compile=True)

  def replica_step(episodes: types.Episode):
    grads, metrics = replica_gradients(episodes)
    if distributed:
      grads, metrics = tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, (grads, metrics))
    return dict(metrics, grad_norm=_update(optimizer, variables, grads,
                                           clip_norm))

  if not distributed:
    return tf.function(replica_step, jit_compile=jit_compile)

  def step(distributed_episodes):
    metrics = strategy.run(replica_step, args=(distributed_episodes,))
    # Every replica holds the same reduced metrics: take this worker's first.
    return tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0], metrics)

  return tf.function(step)


def _update(optimizer, variables, grads, clip_norm: float) -> tf.Tensor:
  """Clips `grads` to global norm `clip_norm` (0: no clipping) and applies
  them; returns their norm before clipping."""
  grad_norm = tf.linalg.global_norm(grads)
  if clip_norm > 0:
    grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
  optimizer.apply_gradients(zip(grads, variables))
  return grad_norm


def meta_gradients(rule: rules.UpdateRule, episodes: types.Episode,
                   inner_config: config_lib.InnerLoopConfig,
                   global_batch: Optional[int] = None):
  """The meta-gradient of one meta-batch (or of one replica's share of
  it): the maths of every meta-train step (the CLI's on any strategy, and
  `MetaLearner.train_step`).

  Args:
    rule: the meta-learner.
    episodes: a `types.Episode` with a leading meta-batch axis b.
    inner_config: inner-loop settings.
    global_batch: B, the episodes of the whole meta-batch over every
      replica; None: b (one device).

  Returns:
    (gradients of sum(query losses) / B w.r.t. `rule.trainable_variables`,
    metrics: `loss`, `accuracy`, `support_losses` [T + 1],
    `forget_gate_mean` [T], `input_gate_mean` [T], each sum over the b
    episodes / B: on one device the means, under a strategy the replica's
    share of them (their sum over replicas is the mean)).
  """
  global_batch = global_batch or episodes.support_images.shape[0]
  with tf.GradientTape() as tape:
    losses, accuracies, results = inner_loop.meta_batch_losses(
        rule, episodes, inner_config)
    meta_loss = tf.add_n(losses) / global_batch
  grads = tape.gradient(meta_loss, rule.trainable_variables)

  def share_of(values):
    return tf.add_n(values) / global_batch

  metrics = {'loss': meta_loss, 'accuracy': share_of(accuracies)}
  for field in _MEAN_RESULT_FIELDS:
    metrics[field] = share_of([getattr(r, field) for r in results])
  return grads, metrics


_MEAN_RESULT_FIELDS = ('support_losses', 'forget_gate_mean',
                       'input_gate_mean')


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
