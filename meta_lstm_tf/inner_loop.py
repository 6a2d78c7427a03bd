"""The one inner loop: adapting the learner to an episode's support set.

Shapes: S support examples, Q_total query examples, P learner coordinates,
T inner steps.

`adapt` runs T updates of the learner's flat parameters on the support set by
an update rule (any `learners.Learner`: the built-in conv net or a Keras
model, seen only through that interface) (`rules.UpdateRule`: the meta-LSTM, SGD or Meta-SGD),
inside a `tf.while_loop` (so a second-order graph does not grow with T at
trace time). First- or second-order meta-gradients are chosen in one
place, `support_loss_and_gradient`.
"""

from typing import Optional

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.config import settings
from meta_lstm_tf.learners import conv_ops as learner_lib
from meta_lstm_tf import learners
from meta_lstm_tf import rules
from meta_lstm_tf import runtime
from meta_lstm_tf import types


def support_loss_and_gradient(params: tf.Tensor, images: tf.Tensor,
                              labels: tf.Tensor, learner,
                              second_order: bool,
                              patches=None,
                              conv_dtype=None):
  """Support loss, its gradient w.r.t. the flat parameters, and BN stats.

  First order (the paper): the learner's loss and gradient enter the
  meta-LSTM as constants. The support pass runs on `stop_gradient(params)`, so
  an enclosing (outer) tape records none of it and memory does not grow with
  the support passes. Second order: the gradient is itself differentiable
  (nested tape), giving exact meta-gradients.

  Args:
    params: [P] flat learner parameters.
    images: [S, H, W, C]; labels: int32 [S].
    learner: a `learners.Learner` (or a `LearnerConfig`).
    second_order: whether to keep the gradient differentiable.
    patches: optional `learner.prepare(images)`.
    conv_dtype: see `conv_ops.features` (first order only).

  Returns:
    (loss [], grad [P], batch `types.BatchNormStats`, with no gradient).
  """
  learner = learners.as_learner(learner)
  if not second_order:
    params = tf.stop_gradient(params)
  with tf.GradientTape() as tape:
    tape.watch(params)
    logits, batch_stats = learner.apply(
        params, images, twice_differentiable=second_order, aux=patches,
        conv_dtype=conv_dtype)
    loss, _ = learner_lib.loss_and_accuracy(logits, labels)
  grad = tape.gradient(loss, params)
  return loss, grad, tf.nest.map_structure(tf.stop_gradient, batch_stats)


def adapt(rule: rules.UpdateRule, weights, initial_params: tf.Tensor,
          support_images: tf.Tensor, support_labels: tf.Tensor, *,
          inner_steps: int, second_order: bool = False,
          bn_momentum: Optional[float] = 1.0,
          record_gates: bool = False, conv_dtype=None,
          head_init: str = 'learned') -> types.AdaptationResult:
  """Adapts the learner to a support set with T steps of an update rule.

  The rule is used only through `rules.UpdateRule`'s interface
  (`initial_state`, `update`), whichever rule it is.

  Batch-norm running statistics are reset at the start (every episode starts
  fresh) and accumulated over the T + 1 support passes (theta_0 .. theta_T;
  the last pass is forward only and gives the final support loss) with
  `conv_ops.accumulate_bn_stats(..., bn_momentum)`.

  Args:
    rule: the update rule (`rule.learner` is the learner).
    weights: the rule's meta-parameters, `rule.meta_weights()`.
    initial_params: [P] theta_0 (`rule.initial_params`).
    support_images: [S, H, W, C]; support_labels: int32 [S].
    inner_steps: T.
    second_order: exact meta-gradients through the learner's gradient.
    bn_momentum: see `learner_lib.accumulate_bn_stats` (1.0: the last
      pass).
    record_gates: also return the full [T, P] gates (for histograms).
    conv_dtype: the first-order passes' conv precision (`conv_ops.features`;
      None: the parameters' dtype).
    head_init: `learned` (theta_0 as given, the paper) or `prototypes`
      (its linear head set from the support set first, `initial_head`).

  Returns: `types.AdaptationResult`.
  """
  learner = rule.learner
  dtype = initial_params.dtype
  weights = rule.prepare(weights)
  # Per-episode work shared by all T + 1 passes (the built-in learner's
  # first-conv patches).
  patches = learner.prepare(support_images)
  initial_params = initial_head(
      head_init, learner, initial_params, support_images, support_labels,
      patches, conv_dtype=None if second_order else conv_dtype)

  def body(t, state, stats, trace):
    loss, grad, batch_stats = support_loss_and_gradient(
        state.params, support_images, support_labels, learner,
        second_order, patches, conv_dtype)
    if not second_order:
      loss = tf.stop_gradient(loss)
    state = rule.update(weights, state, grad, loss)
    trace = _record_step(trace, t, loss, state, record_gates)
    stats = learner_lib.accumulate_bn_stats(stats, batch_stats, bn_momentum)
    return t + 1, state, stats, trace

  _, state, stats, trace = tf.while_loop(
      lambda t, *_: t < inner_steps, body,
      (tf.constant(0), rule.initial_state(weights, initial_params),
       learner.init_stats(dtype),
       _new_trace(dtype, inner_steps, initial_params.shape, record_gates)),
      maximum_iterations=inner_steps)

  # Final support pass at theta_T: forward only, outside any meta-gradient.
  final_logits, final_stats = learner.apply(
      tf.stop_gradient(state.params), support_images,
      twice_differentiable=False, aux=patches, conv_dtype=conv_dtype)
  final_loss, _ = learner_lib.loss_and_accuracy(final_logits, support_labels)
  stats = learner_lib.accumulate_bn_stats(
      stats, tf.nest.map_structure(tf.stop_gradient, final_stats), bn_momentum)
  losses = trace['losses'].write(inner_steps, final_loss)
  if record_gates:
    forget_gates = trace['forget_all'].stack()
    input_gates = trace['input_all'].stack()
  else:
    forget_gates = input_gates = tf.zeros([0, 0], dtype)
  return types.AdaptationResult(
      params=state.params, bn_stats=stats, support_losses=losses.stack(),
      forget_gate_mean=trace['forget_means'].stack(),
      input_gate_mean=trace['input_means'].stack(),
      forget_gates=forget_gates, input_gates=input_gates)


def check_head_init(learner, head_init: str) -> None:
  """Raises ValueError naming `head_init` unless the learner supports it."""
  learner = learners.as_learner(learner)
  settings.check(head_init in settings.HEAD_INITS, 'head_init', head_init,
                 f'must be one of {settings.HEAD_INITS}')
  if head_init == 'prototypes' and (type(learner).head_features is
                                    learners.Learner.head_features):
    raise ValueError(
        f"head_init='prototypes': {type(learner).__name__} exposes no linear "
        'head to set from the prototypes (the built-in conv learner does)')


def initial_head(head_init: str, learner, params: tf.Tensor,
                 images: tf.Tensor, labels: tf.Tensor, patches=None,
                 conv_dtype=None) -> tf.Tensor:
  """theta_0 for `adapt`: `params` as given (`learned`), or with the head
  set from the class prototypes of `images` (`prototypes`)."""
  check_head_init(learner, head_init)
  if head_init == 'learned':
    return params
  return prototype_head_params(learner, params, images, labels, patches,
                               conv_dtype)


def prototype_head_params(learner, params: tf.Tensor, images: tf.Tensor,
                          labels: tf.Tensor, patches=None,
                          conv_dtype=None) -> tf.Tensor:
  """[P] `params` with the linear head replaced by `conv_ops.prototype_head`
  of the learner's features of `images` (at `params`, batch statistics).

  Differentiable: a meta-gradient reaching the head flows on into the
  features' parameters through the prototypes.
  """
  learner = learners.as_learner(learner)
  spec = [tuple(shape) for shape in learner.param_spec.values()]
  num_ways = learner.num_ways
  if len(spec) < 2 or len(spec[-2]) != 2 or spec[-2][1] != num_ways or (
      spec[-1] != (num_ways,)):
    raise ValueError(
        "head_init='prototypes': the learner's last two parameters must be a "
        f'linear head [F, {num_ways}] and [{num_ways}], not {spec[-2:]}')
  num_features = spec[-2][0]
  feature_batch = tf.ensure_shape(
      learner.head_features(params, images, aux=patches,
                            conv_dtype=conv_dtype), [None, num_features])
  kernel, bias = learner_lib.prototype_head(feature_batch, labels, num_ways)
  head_size = (num_features + 1) * num_ways
  return tf.concat([params[:-head_size], tf.reshape(kernel, [-1]), bias],
                   axis=0)


def _new_trace(dtype, inner_steps: int, params_shape, record_gates: bool
               ) -> dict:
  """The per-step records of `adapt`: the T + 1 support losses, the T mean
  gates, and (`record_gates`) the T full [P] gates."""
  gate_steps = inner_steps if record_gates else 0
  return {
      'losses': tf.TensorArray(dtype, size=inner_steps + 1),
      'forget_means': tf.TensorArray(dtype, size=inner_steps,
                                     element_shape=[]),
      'input_means': tf.TensorArray(dtype, size=inner_steps,
                                    element_shape=[]),
      'forget_all': tf.TensorArray(dtype, size=gate_steps,
                                   element_shape=params_shape),
      'input_all': tf.TensorArray(dtype, size=gate_steps,
                                  element_shape=params_shape),
  }


def _record_step(trace: dict, t, loss, state, record_gates: bool) -> dict:
  """`trace` with step t's loss and gates written (no gradient)."""
  trace = dict(trace)
  trace['losses'] = trace['losses'].write(t, tf.stop_gradient(loss))
  trace['forget_means'] = trace['forget_means'].write(
      t, tf.stop_gradient(tf.reduce_mean(state.forget_gate)))
  trace['input_means'] = trace['input_means'].write(
      t, tf.stop_gradient(tf.reduce_mean(state.input_gate)))
  if record_gates:
    trace['forget_all'] = trace['forget_all'].write(
        t, tf.stop_gradient(state.forget_gate))
    trace['input_all'] = trace['input_all'].write(
        t, tf.stop_gradient(state.input_gate))
  return trace


def query_logits(result: types.AdaptationResult, query_images: tf.Tensor,
                 learner, *,
                 use_support_stats: bool, conv_dtype=None,
                 differentiated: bool = True) -> tf.Tensor:
  """Logits [Q_total, N] of the adapted learner on the query set.

  With the support statistics every query is classified on its own, so the
  batch is split in two halves that the runtime classifies side by side on
  two cores (the same logits: nothing couples the queries).

  Args:
    result: `adapt`'s output.
    query_images: [Q_total, H, W, C].
    learner: the adapted `learners.Learner` (or a `LearnerConfig`).
    use_support_stats: normalise with the episode's running support
      statistics (non-transductive) instead of the query batch's own.
    conv_dtype: see `conv_ops.features`.
    differentiated: whether a gradient of the logits will be taken (passed
      to `learner.prepare`: the built-in learner's first conv then runs over
      input patches, which makes its kernel gradient cheap; forward only,
      the plain conv is cheaper).
  """
  learner = learners.as_learner(learner)
  bn_stats: Optional[types.BatchNormStats] = None
  if use_support_stats:
    bn_stats = result.bn_stats

  def forward(images):
    logits, _ = learner.apply(result.params, images, stats=bn_stats,
                              twice_differentiable=False,
                              aux=learner.prepare(images, differentiated),
                              conv_dtype=conv_dtype)
    return logits

  if not use_support_stats:
    return forward(query_images)
  count = tf.shape(query_images)[0]
  half = (count + 1) // 2

  def halves():
    return tf.concat([forward(query_images[:half]),
                      forward(query_images[half:])], axis=0)

  # oneDNN's convolutions reject an empty batch: one query goes alone.
  return tf.cond(count >= 2, halves, lambda: forward(query_images))


def adapt_and_classify(rule: rules.UpdateRule,
                       support_images: tf.Tensor, support_labels: tf.Tensor,
                       query_images: tf.Tensor,
                       inner_config: config_lib.InnerLoopConfig, *,
                       training: bool, record_gates: bool = False):
  """Adapts the learner to a support set and classifies queries.

  The one place that turns the inner-loop config into `adapt` and
  `query_logits` arguments; training, evaluation and export all call it.
  `inner_config.conv_dtype` is resolved here, when the caller is traced
  (`runtime.resolve_conv_dtype`).

  Returns:
    (logits [Q_total, N], `types.AdaptationResult`).
  """
  conv_dtype = runtime.resolve_conv_dtype(inner_config.conv_dtype)
  result = adapt(
      rule, rule.meta_weights(), tf.convert_to_tensor(rule.initial_params),
      support_images, support_labels, inner_steps=inner_config.inner_steps,
      second_order=inner_config.second_order and training,
      bn_momentum=inner_config.bn_momentum,
      record_gates=record_gates, conv_dtype=conv_dtype,
      head_init=inner_config.head_init)
  if training:
    use_support_stats = inner_config.train_query_stats == 'support'
  else:
    use_support_stats = not inner_config.transductive
  logits = query_logits(result, query_images, rule.learner,
                        use_support_stats=use_support_stats,
                        conv_dtype=conv_dtype, differentiated=training)
  return logits, result


def episode_loss(rule: rules.UpdateRule, episode: types.Episode,
                 inner_config: config_lib.InnerLoopConfig, *, training: bool,
                 record_gates: bool = False):
  """Adapts to one episode and scores the query set.

  Returns:
    (query loss [], query accuracy [], `types.AdaptationResult`).
  """
  logits, result = adapt_and_classify(
      rule, episode.support_images, episode.support_labels,
      episode.query_images, inner_config, training=training,
      record_gates=record_gates)
  loss, accuracy = learner_lib.loss_and_accuracy(logits, episode.query_labels)
  return loss, accuracy, result


def meta_batch_losses(rule, episodes: types.Episode,
                       inner_config: config_lib.InnerLoopConfig,
                       training: bool = True):
  """Adapts to each episode of a stacked batch (leading axis).

  Returns:
    Lists (one item per episode) of query losses, query accuracies and
    `types.AdaptationResult`s.
  """
  losses, accuracies, results = [], [], []
  for b in range(episodes.support_images.shape[0]):
    episode = tf.nest.map_structure(lambda x, b=b: x[b], episodes)
    loss, accuracy, result = episode_loss(rule, episode, inner_config,
                                          training=training)
    losses.append(loss)
    accuracies.append(accuracy)
    results.append(result)
  return losses, accuracies, results
