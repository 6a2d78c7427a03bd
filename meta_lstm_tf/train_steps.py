"""Compiled meta-train and evaluation steps.

Shapes: B episodes per meta-batch, S support and Q_total query examples per
episode, T inner steps.

The meta-train step adapts the learner to each episode of a meta-batch with
`inner_loop.adapt`, takes the query cross-entropy at theta_T averaged over the
meta-batch, and applies one clipped optimizer update to every meta-parameter
(meta-LSTM weights and the learned initial learner parameters).
"""

from typing import Callable, Dict

import keras
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import learner
from meta_lstm_tf import meta_lstm_layer
from meta_lstm_tf import types


def adapt_and_classify(layer: meta_lstm_layer.MetaLSTMLayer,
                       support_images: tf.Tensor, support_labels: tf.Tensor,
                       query_images: tf.Tensor,
                       inner_config: config_lib.InnerLoopConfig, *,
                       training: bool, record_gates: bool = False):
  """Adapts the learner to a support set and classifies queries.

  The one place that turns the inner-loop config into `adapt` and
  `query_logits` arguments; training, evaluation and export all call it.

  Returns:
    (logits [Q_total, N], `types.AdaptationResult`).
  """
  result = inner_loop.adapt(
      layer.meta_weights(), tf.convert_to_tensor(layer.initial_params),
      support_images, support_labels, learner_config=layer.learner_cfg,
      inner_steps=inner_config.inner_steps,
      second_order=inner_config.second_order and training,
      preprocess_p=layer.preprocess_p, bn_momentum=inner_config.bn_momentum,
      record_gates=record_gates)
  if training:
    use_support_stats = inner_config.train_query_stats == 'support'
  else:
    use_support_stats = not inner_config.transductive
  logits = inner_loop.query_logits(result, query_images, layer.learner_cfg,
                                   use_support_stats=use_support_stats)
  return logits, result


def episode_loss(layer: meta_lstm_layer.MetaLSTMLayer, episode: types.Episode,
                 inner_config: config_lib.InnerLoopConfig, *, training: bool,
                 record_gates: bool = False):
  """Adapts to one episode and scores the query set.

  Returns:
    (query loss [], query accuracy [], `types.AdaptationResult`).
  """
  logits, result = adapt_and_classify(
      layer, episode.support_images, episode.support_labels,
      episode.query_images, inner_config, training=training,
      record_gates=record_gates)
  loss, accuracy = learner.loss_and_accuracy(logits, episode.query_labels)
  return loss, accuracy, result


def make_meta_train_step(
    layer: meta_lstm_layer.MetaLSTMLayer, optimizer: keras.optimizers.Optimizer,
    inner_config: config_lib.InnerLoopConfig, clip_norm: float,
    jit_compile: bool = False) -> Callable[[types.Episode], Dict[str, tf.Tensor]]:
  """Builds the compiled meta-train step.

  Args:
    layer: the meta-learner (owns every meta-parameter).
    optimizer: a Keras optimizer (Adam in the paper).
    inner_config: inner-loop settings (T, first/second order).
    clip_norm: global-norm clipping of the meta-gradient (0 disables).
    jit_compile: compile the step with XLA.

  Returns:
    step(episodes) -> metrics, where `episodes` is a `types.Episode` with a
    leading meta-batch axis B; metrics hold `loss`, `accuracy`, `grad_norm`,
    `support_losses` [T + 1], `forget_gate_mean` [T], `input_gate_mean` [T].
  """
  variables = layer.trainable_variables

  def step(episodes: types.Episode):
    batch_size = episodes.support_images.shape[0]
    with tf.GradientTape() as tape:
      losses, accuracies, results = [], [], []
      for b in range(batch_size):
        episode = tf.nest.map_structure(lambda x, b=b: x[b], episodes)
        loss, accuracy, result = episode_loss(layer, episode, inner_config,
                                              training=True)
        losses.append(loss)
        accuracies.append(accuracy)
        results.append(result)
      meta_loss = tf.add_n(losses) / batch_size
    grads = tape.gradient(meta_loss, variables)
    grad_norm = tf.linalg.global_norm(grads)
    if clip_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
    optimizer.apply_gradients(zip(grads, variables))

    def mean_of(field):
      return tf.add_n([getattr(r, field) for r in results]) / batch_size

    return {
        'loss': meta_loss,
        'accuracy': tf.add_n(accuracies) / batch_size,
        'grad_norm': grad_norm,
        'support_losses': mean_of('support_losses'),
        'forget_gate_mean': mean_of('forget_gate_mean'),
        'input_gate_mean': mean_of('input_gate_mean'),
    }

  return tf.function(step, jit_compile=jit_compile)


def make_eval_step(layer: meta_lstm_layer.MetaLSTMLayer,
                   inner_config: config_lib.InnerLoopConfig,
                   jit_compile: bool = False):
  """Builds the compiled evaluation step.

  The step takes a batch of E episodes (leading axis) and returns per-episode
  (loss [E], accuracy [E]). The E adaptations are independent, so the runtime
  overlaps them on the available cores. Uses non-transductive batch norm (the
  episode's running support statistics) unless `inner_config.transductive`.
  """

  def step(episodes: types.Episode):
    losses, accuracies = [], []
    for e in range(episodes.support_images.shape[0]):
      episode = tf.nest.map_structure(lambda x, e=e: x[e], episodes)
      loss, accuracy, _ = episode_loss(layer, episode, inner_config,
                                       training=False)
      losses.append(loss)
      accuracies.append(accuracy)
    return tf.stack(losses), tf.stack(accuracies)

  return tf.function(step, jit_compile=jit_compile)


def make_diagnostics_step(layer: meta_lstm_layer.MetaLSTMLayer,
                          inner_config: config_lib.InnerLoopConfig):
  """Builds a step that also returns the full [T, P] gates, for histograms."""

  def step(episode: types.Episode):
    _, _, result = episode_loss(layer, episode, inner_config, training=False,
                                record_gates=True)
    return result

  return tf.function(step)
