"""Meta-gradients of the inner loop, for every update rule: finite
differences (second order), a stop-gradient reference (first order), and
`sgd` == the meta-LSTM forced to f = 1, i = lr."""

import functools

from absl import flags
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf import types
from meta_lstm_tf.rules import meta_lstm
from meta_lstm_tf.rules import meta_lstm_cell
from meta_lstm_tf.rules import meta_sgd
from meta_lstm_tf.rules import sgd
from tests.fixtures import gradients
from tests.fixtures import reference

TINY = config_lib.LearnerConfig(num_ways=2, num_filters=2, num_blocks=1,
                                image_size=4, channels=1)
HIDDEN = 3
STEPS = 3


RULES = ('meta_lstm', 'sgd', 'meta_sgd')


@functools.lru_cache(maxsize=None)
def make_rule(name):
  """One layer per rule, built eagerly (its variables are not used: tests
  pass their own float64 weights)."""
  if name == 'meta_lstm':
    return meta_lstm.MetaLSTMRule(TINY, hidden_size=HIDDEN)
  if name == 'sgd':
    return sgd.SGDRule(TINY, learning_rate=0.3)
  return meta_sgd.MetaSGDRule(TINY)


def rule_weights(name, rng):
  """Float64 meta-parameters (besides theta_0) of a rule, as a flat list."""
  if name == 'meta_lstm':
    return gradients.meta_lstm_weights(rng, HIDDEN)
  if name == 'sgd':
    return [np.array(0.3)]
  return [rng.uniform(0.05, 0.5, size=learner.num_params(TINY))]


def pack_weights(name, flat):
  if name == 'meta_lstm':
    return meta_lstm_cell.MetaLSTMWeights(*flat)
  return flat[0]


def tiny_problem(seed=0, rule='meta_lstm'):
  """meta: the rule's float64 weights then theta_0; data: one episode."""
  make_rule(rule)  # Built here, eagerly, not inside a tf.function.
  rng = np.random.default_rng(seed)
  weights = rule_weights(rule, rng)
  theta0 = learner.flatten(learner.init_params(TINY, seed), learner.param_spec(
      TINY)).numpy().astype(np.float64)
  support = rng.uniform(size=(4, 4, 4, 1))
  support_labels = np.array([0, 1, 0, 1], np.int32)
  query = rng.uniform(size=(6, 4, 4, 1))
  query_labels = np.array([0, 1, 0, 1, 1, 0], np.int32)
  meta = [tf.constant(w, tf.float64) for w in weights] + [tf.constant(theta0)]
  data = (tf.constant(support), tf.constant(support_labels),
          tf.constant(query), tf.constant(query_labels))
  return meta, data


def query_loss(meta, data, second_order, rule='meta_lstm'):
  support, support_labels, query, query_labels = data
  result = inner_loop.adapt(make_rule(rule), pack_weights(rule, meta[:-1]),
                            meta[-1], support, support_labels,
                            inner_steps=STEPS, second_order=second_order)
  logits = inner_loop.query_logits(result, query, TINY,
                                   use_support_stats=False)
  return learner.loss_and_accuracy(logits, query_labels)[0]


def meta_gradient(meta, data, second_order, rule='meta_lstm'):
  with tf.GradientTape() as tape:
    tape.watch(meta)
    loss = query_loss(meta, data, second_order, rule)
  return tape.gradient(loss, meta)


def reference_first_order_loss(meta, data, rule='meta_lstm'):
  """Unrolled Python loop, stop_gradient on the learner's gradient and loss."""
  support, support_labels, query, query_labels = data
  update = make_rule(rule)
  weights = update.prepare(pack_weights(rule, meta[:-1]))
  spec = learner.param_spec(TINY)
  state = update.initial_state(weights, meta[-1])
  for _ in range(STEPS):
    with tf.GradientTape() as tape:
      tape.watch(state.params)
      logits, _ = learner.apply(learner.unflatten(state.params, spec), support,
                                TINY)
      loss = learner.loss_and_accuracy(logits, support_labels)[0]
    grad = tape.gradient(loss, state.params)
    state = update.update(weights, state, tf.stop_gradient(grad),
                          tf.stop_gradient(loss))
  logits, _ = learner.apply(learner.unflatten(state.params, spec), query, TINY)
  return learner.loss_and_accuracy(logits, query_labels)[0]


class InnerLoopTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.product(rule=RULES, use_function=(False, True))
  def test_second_order_matches_finite_differences(self, rule, use_function):
    meta, data = tiny_problem(rule=rule)
    grad_fn = lambda m: meta_gradient(m, data, True, rule)
    loss_fn = lambda m: query_loss(m, data, True, rule)
    if use_function:
      grad_fn, loss_fn = tf.function(grad_fn), tf.function(loss_fn)
    gradients.assert_matches_finite_differences(
        self, loss_fn, grad_fn(meta), meta, np.random.default_rng(42),
        eps=1e-6)

  @parameterized.parameters(*RULES)
  def test_second_order_differs_from_first_order(self, rule):
    meta, data = tiny_problem(rule=rule)
    first = meta_gradient(meta, data, False, rule)
    second = meta_gradient(meta, data, True, rule)
    diff = max(float(tf.reduce_max(tf.abs(a - b)))
               for a, b in zip(first, second))
    self.assertGreater(diff, 1e-4)

  @parameterized.parameters(*RULES)
  def test_first_order_equals_stop_gradient_reference(self, rule):
    meta, data = tiny_problem(seed=1, rule=rule)
    got = tf.function(lambda m: meta_gradient(m, data, False, rule))(meta)
    with tf.GradientTape() as tape:
      tape.watch(meta)
      loss = reference_first_order_loss(meta, data, rule)
    want = tape.gradient(loss, meta)
    for g, w in zip(got, want):
      self.assertAllClose(g, w, rtol=1e-9, atol=1e-12)

  def test_bn_statistics_reset_per_episode_and_average_support_passes(self):
    meta, (support, labels, _, _) = tiny_problem()
    weights = meta_lstm_cell.MetaLSTMWeights(*meta[:-1])
    other = tf.constant(np.random.default_rng(5).uniform(size=(4, 4, 4, 1)))
    rule = make_rule('meta_lstm')

    def run(images, momentum=None):
      return inner_loop.adapt(rule, weights, meta[-1], images, labels,
                              inner_steps=STEPS, bn_momentum=momentum)

    run(other)  # An earlier episode must leave no trace.
    result = run(support)
    # Recompute the T + 1 support passes by hand and average their stats.
    state = meta_lstm_cell.initial_state(meta[-1], HIDDEN)
    means = []
    for t in range(STEPS + 1):
      loss, grad, stats = inner_loop.support_loss_and_gradient(
          state.params, support, labels, TINY, False)
      means.append(stats.means[0].numpy())
      if t < STEPS:
        state = meta_lstm_cell.meta_lstm_step(
            meta_lstm_cell.prepare(weights), state, grad, loss)
    self.assertAllClose(result.bn_stats.means[0], np.mean(means, axis=0))
    self.assertEqual(float(result.bn_stats.count), STEPS + 1)
    self.assertAllClose(result.params, state.params)
    # momentum 1: the statistics of the last pass, at theta_T.
    last = run(support, momentum=1.0)
    self.assertAllClose(last.bn_stats.means[0], means[-1])
    # momentum 0.5: an EMA whose first pass replaces the reset values.
    ema = means[0]
    for m in means[1:]:
      ema = 0.5 * (ema + m)
    self.assertAllClose(run(support, momentum=0.5).bn_stats.means[0], ema)

  def test_bn_momentum_flag_zero_is_the_mean_over_passes_in_evaluation(self):
    """`--bn_momentum=0` (None in the config): the episode's running
    statistics are the mean of the T + 1 support passes' batch statistics,
    recomputed here in NumPy, and evaluation normalises the queries with
    them."""
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values(['prog', '--workdir=/tmp/x', '--bn_momentum=0',
                 f'--inner_steps={STEPS}'])
    inner_config = cli.config_from_flags(flag_values).inner_loop
    self.assertIsNone(inner_config.bn_momentum)
    rule = make_rule('sgd')  # theta_t = theta_{t-1} - 0.3 grad_t.
    _, (support, labels, query, _) = tiny_problem()
    support, query = tf.cast(support, tf.float32), tf.cast(query, tf.float32)
    logits, result = inner_loop.adapt_and_classify(
        rule, support, labels, query, inner_config, training=False)
    # The passes at theta_0 .. theta_T: SGD on the library's support
    # gradient; each pass's conv1 output (bias included) in NumPy.
    spec = learner.param_spec(TINY)
    theta = rule.initial_params.numpy()
    means, variances = [], []
    for t in range(STEPS + 1):
      params = learner.unflatten(tf.constant(theta), spec)
      conv = reference.conv3x3_same(support, params['conv1/kernel'],
                                    params['conv1/bias'])
      means.append(conv.mean(axis=(0, 1, 2)))
      variances.append(conv.var(axis=(0, 1, 2)))
      if t < STEPS:
        _, grad, _ = inner_loop.support_loss_and_gradient(
            tf.constant(theta), support, labels, TINY, False)
        theta = theta - np.float32(0.3) * grad.numpy()
    mean, variance = np.mean(means, axis=0), np.mean(variances, axis=0)
    self.assertAllClose(result.params, theta, rtol=1e-5, atol=1e-6)
    self.assertAllClose(result.bn_stats.means[0], mean, rtol=1e-5, atol=1e-6)
    self.assertAllClose(result.bn_stats.variances[0], variance, rtol=1e-5,
                        atol=1e-6)
    self.assertEqual(float(result.bn_stats.count), STEPS + 1)
    # Not the last pass's statistics (the default, momentum 1).
    self.assertGreater(np.max(np.abs(means[-1] - mean)), 1e-3)
    stats = types.BatchNormStats((tf.constant(mean, tf.float32),),
                                 (tf.constant(variance, tf.float32),),
                                 tf.constant(float(STEPS + 1)))
    want, _ = learner.apply(learner.unflatten(result.params, spec), query,
                            TINY, bn_stats=stats)
    self.assertAllClose(logits, want, rtol=1e-4, atol=1e-5)

  def test_support_loss_decreases_on_separable_episode(self):
    cfg = config_lib.LearnerConfig(num_ways=2, num_filters=8, num_blocks=2,
                                   image_size=8)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 0.2, size=(6, 8, 8, 1))
    images[0::2, :4] += 0.8   # class 0: top half lit
    images[1::2, 4:] += 0.8   # class 1: bottom half lit
    labels = tf.constant([0, 1] * 3)
    layer = meta_lstm.MetaLSTMRule(cfg)  # paper initialisation
    result = inner_loop.adapt(
        layer, layer.meta_weights(), tf.convert_to_tensor(layer.initial_params),
        tf.constant(images, tf.float32), labels, inner_steps=8)
    losses = result.support_losses.numpy()
    self.assertLen(losses, 9)
    self.assertTrue(np.all(np.diff(losses) < 0), msg=str(losses))
    self.assertLess(losses[-1], 0.5 * losses[0])
    # Initial gates: forget close to 1, input small (about gradient descent).
    self.assertAllGreater(result.forget_gate_mean, 0.95)
    self.assertAllLess(result.input_gate_mean, 0.05)

  def test_no_retracing_across_episodes(self):
    meta, data = tiny_problem()
    fn = tf.function(lambda d: query_loss(meta, d, False))
    fn(data)
    _, data2 = tiny_problem(seed=7)
    fn(data2)
    self.assertEqual(fn.experimental_get_tracing_count(), 1)

  def test_record_gates_shapes(self):
    meta, (support, labels, _, _) = tiny_problem()
    result = inner_loop.adapt(make_rule('meta_lstm'),
                              meta_lstm_cell.MetaLSTMWeights(*meta[:-1]),
                              meta[-1], support, labels, inner_steps=STEPS,
                              record_gates=True)
    p = learner.num_params(TINY)
    self.assertEqual(result.forget_gates.shape, (STEPS, p))
    self.assertAllClose(tf.reduce_mean(result.forget_gates, axis=1),
                        result.forget_gate_mean)

  @parameterized.parameters((1, 0.0), (4, 0.0), (4, -2.1972246))
  def test_sgd_equals_meta_lstm_forced_to_unit_forget_and_lr_input(
      self, steps, input_bias):
    """Gates forced through the weights: zero kernels, f bias 30 (sigmoid is
    exactly 1 in float32), i bias b. b = 0 gives i = 0.5 exactly, so the
    adapted parameters must agree to the bit. b = logit(0.1): TF's
    vectorised sigmoid returns 0.1 or its float32 neighbour depending on the
    element's position, so i differs from a constant lr by 1 ulp in places
    and agreement is to float32 rounding."""
    cfg = config_lib.LearnerConfig(num_ways=3, num_filters=4, num_blocks=2,
                                   image_size=8)
    lstm = meta_lstm.MetaLSTMRule(cfg, seed=3)
    lstm.forget_kernel.assign(tf.zeros_like(lstm.forget_kernel))
    lstm.forget_bias.assign(30.0)
    lstm.input_kernel.assign(tf.zeros_like(lstm.input_kernel))
    lstm.input_bias.assign(input_bias)
    weights = lstm.meta_weights()
    lr = float(tf.sigmoid(weights.input_bias))
    self.assertEqual(float(tf.sigmoid(weights.forget_bias)), 1.0)
    sgd_update = sgd.SGDRule(cfg, learning_rate=lr, seed=3)
    self.assertAllEqual(sgd_update.initial_params, lstm.initial_params)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(size=(6, 8, 8, 1)), tf.float32)
    labels = tf.constant([0, 1, 2] * 2)

    def run(rule):
      return tf.function(lambda: inner_loop.adapt(
          rule, rule.meta_weights(), tf.convert_to_tensor(rule.initial_params),
          images, labels, inner_steps=steps, record_gates=True))()

    want, got = run(lstm), run(sgd_update)
    if input_bias == 0.0:
      check = self.assertAllEqual
    else:
      check = functools.partial(self.assertAllClose, rtol=1e-5, atol=1e-6)
    check(got.params, want.params)
    check(got.support_losses, want.support_losses)
    for g, w in zip(tf.nest.flatten(got.bn_stats),
                    tf.nest.flatten(want.bn_stats)):
      check(g, w)
    self.assertAllEqual(got.forget_gates, want.forget_gates)
    check(got.input_gates, want.input_gates)
    # The parameters did move: the equality is not a trivial one.
    self.assertGreater(
        float(tf.reduce_max(tf.abs(got.params - lstm.initial_params))), 1e-3)

  def test_meta_sgd_starts_as_sgd_and_learns_per_coordinate_rates(self):
    learned = meta_sgd.MetaSGDRule(TINY, initial_learning_rate=0.2)
    fixed = sgd.SGDRule(TINY, learning_rate=0.2)
    _, (support, labels, query, query_labels) = tiny_problem()
    support = tf.cast(support, tf.float32)

    def adapted(rule):
      return inner_loop.adapt(
          rule, rule.meta_weights(), tf.convert_to_tensor(rule.initial_params),
          support, labels, inner_steps=STEPS).params

    self.assertAllClose(adapted(learned), adapted(fixed), rtol=0, atol=1e-7)
    with tf.GradientTape() as tape:
      result = inner_loop.adapt(
          learned, learned.meta_weights(),
          tf.convert_to_tensor(learned.initial_params), support, labels,
          inner_steps=STEPS)
      logits = inner_loop.query_logits(result, tf.cast(query, tf.float32),
                                       TINY, use_support_stats=False)
      loss = learner.loss_and_accuracy(logits, query_labels)[0]
    grads = tape.gradient(loss, learned.trainable_variables)
    self.assertLen(grads, 2)
    by_name = {v.name: g for v, g in zip(learned.trainable_variables, grads)}
    rate_grad = by_name['learning_rates'].numpy()
    # One rate per coordinate, each with its own gradient.
    self.assertEqual(rate_grad.shape, (learner.num_params(TINY),))
    self.assertGreater(len(np.unique(np.round(rate_grad, 12))), 10)

  @parameterized.parameters(*RULES)
  def test_rule_state_has_gates_and_params(self, rule):
    update_rule = make_rule(rule)
    weights = update_rule.prepare(update_rule.meta_weights())
    params = tf.convert_to_tensor(update_rule.initial_params)
    state = update_rule.initial_state(weights, params)
    grad = tf.ones_like(params)
    new = update_rule.update(weights, state, grad, tf.constant(1.0))
    self.assertEqual(type(new), type(state))
    for field in ('params', 'forget_gate', 'input_gate'):
      self.assertEqual(getattr(new, field).shape, params.shape)
    # theta_t = f_t * theta_{t-1} - i_t * grad_t, whatever the rule.
    self.assertAllClose(new.params, new.forget_gate * params - new.input_gate)


class QueryLogitsTest(tf.test.TestCase):
  """query_logits splits non-transductive batches; the logits do not move."""

  def test_halves_and_single_queries_match_one_pass(self):
    cfg = config_lib.LearnerConfig(num_ways=3, num_filters=4, num_blocks=2,
                                   image_size=8)
    spec = learner.param_spec(cfg)
    flat = learner.flatten(learner.init_params(cfg, 2), spec)
    support = tf.random.stateless_uniform([6, 8, 8, 1], seed=[1, 2])
    _, stats = learner.apply(learner.unflatten(flat, spec), support, cfg)
    result = types.AdaptationResult(
        params=flat, bn_stats=stats, support_losses=tf.zeros([0]),
        forget_gate_mean=tf.zeros([0]), input_gate_mean=tf.zeros([0]),
        forget_gates=tf.zeros([0]), input_gates=tf.zeros([0]))
    for count in (1, 2, 5):
      query = tf.random.stateless_uniform([count, 8, 8, 1], seed=[3, count])
      for support_stats in (True, False):
        want, _ = learner.apply(learner.unflatten(flat, spec), query, cfg,
                                bn_stats=stats if support_stats else None)
        for differentiated in (True, False):
          got = inner_loop.query_logits(
              result, query, cfg, use_support_stats=support_stats,
              differentiated=differentiated)
          self.assertEqual(got.shape, (count, 3))
          self.assertAllClose(got, want, rtol=1e-5, atol=1e-5)
