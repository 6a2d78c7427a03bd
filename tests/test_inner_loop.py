"""Meta-gradients of the inner loop: finite differences and first order."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import learner
from meta_lstm_tf import meta_lstm_cell

TINY = config_lib.LearnerConfig(num_ways=2, num_filters=2, num_blocks=1,
                                image_size=4, channels=1)
HIDDEN = 3
STEPS = 3


def tiny_problem(seed=0):
  rng = np.random.default_rng(seed)
  shapes = [(4, 4 * HIDDEN), (HIDDEN, 4 * HIDDEN), (4 * HIDDEN,),
            (HIDDEN + 2,), (), (HIDDEN + 2,), ()]
  weights = [rng.uniform(-0.5, 0.5, size=s) for s in shapes]
  weights[4] = np.array(2.0)    # forget bias: f ~ 0.88
  weights[6] = np.array(-1.5)   # input bias: i ~ 0.18
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


def query_loss(meta, data, second_order):
  support, support_labels, query, query_labels = data
  weights = meta_lstm_cell.MetaLSTMWeights(*meta[:-1])
  result = inner_loop.adapt(weights, meta[-1], support, support_labels,
                            learner_config=TINY, inner_steps=STEPS,
                            second_order=second_order)
  logits = inner_loop.query_logits(result, query, TINY,
                                   use_support_stats=False)
  return learner.loss_and_accuracy(logits, query_labels)[0]


def meta_gradient(meta, data, second_order):
  with tf.GradientTape() as tape:
    tape.watch(meta)
    loss = query_loss(meta, data, second_order)
  return tape.gradient(loss, meta)


def reference_first_order_loss(meta, data):
  """Unrolled Python loop, stop_gradient on the learner's gradient and loss."""
  support, support_labels, query, query_labels = data
  weights = meta_lstm_cell.MetaLSTMWeights(*meta[:-1])
  spec = learner.param_spec(TINY)
  state = meta_lstm_cell.initial_state(meta[-1], HIDDEN)
  for _ in range(STEPS):
    with tf.GradientTape() as tape:
      tape.watch(state.params)
      logits, _ = learner.apply(learner.unflatten(state.params, spec), support,
                                TINY)
      loss = learner.loss_and_accuracy(logits, support_labels)[0]
    grad = tape.gradient(loss, state.params)
    state = meta_lstm_cell.meta_lstm_step(weights, state,
                                          tf.stop_gradient(grad),
                                          tf.stop_gradient(loss))
  logits, _ = learner.apply(learner.unflatten(state.params, spec), query, TINY)
  return learner.loss_and_accuracy(logits, query_labels)[0]


class InnerLoopTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(('eager', False), ('tf_function', True))
  def test_second_order_matches_finite_differences(self, use_function):
    meta, data = tiny_problem()
    grad_fn = lambda m: meta_gradient(m, data, True)
    loss_fn = lambda m: query_loss(m, data, True)
    if use_function:
      grad_fn, loss_fn = tf.function(grad_fn), tf.function(loss_fn)
    grads = grad_fn(meta)
    rng = np.random.default_rng(42)
    eps = 1e-6
    for _ in range(3):
      direction = [tf.constant(rng.normal(size=m.shape)) for m in meta]
      analytic = sum(float(tf.reduce_sum(g * d))
                     for g, d in zip(grads, direction))
      plus = loss_fn([m + eps * d for m, d in zip(meta, direction)])
      minus = loss_fn([m - eps * d for m, d in zip(meta, direction)])
      numeric = float(plus - minus) / (2 * eps)
      self.assertLess(abs(analytic - numeric) / abs(numeric), 1e-6,
                      msg=f'analytic={analytic} numeric={numeric}')

  def test_second_order_differs_from_first_order(self):
    meta, data = tiny_problem()
    first = meta_gradient(meta, data, False)
    second = meta_gradient(meta, data, True)
    diff = max(float(tf.reduce_max(tf.abs(a - b)))
               for a, b in zip(first, second))
    self.assertGreater(diff, 1e-4)

  def test_first_order_equals_stop_gradient_reference(self):
    meta, data = tiny_problem(seed=1)
    got = tf.function(lambda m: meta_gradient(m, data, False))(meta)
    with tf.GradientTape() as tape:
      tape.watch(meta)
      loss = reference_first_order_loss(meta, data)
    want = tape.gradient(loss, meta)
    for g, w in zip(got, want):
      self.assertAllClose(g, w, rtol=1e-9, atol=1e-12)

  def test_bn_statistics_reset_per_episode_and_average_support_passes(self):
    meta, (support, labels, _, _) = tiny_problem()
    weights = meta_lstm_cell.MetaLSTMWeights(*meta[:-1])
    other = tf.constant(np.random.default_rng(5).uniform(size=(4, 4, 4, 1)))
    spec = learner.param_spec(TINY)

    def run(images, momentum=None):
      return inner_loop.adapt(weights, meta[-1], images, labels,
                              learner_config=TINY, inner_steps=STEPS,
                              bn_momentum=momentum)

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
        state = meta_lstm_cell.meta_lstm_step(weights, state, grad, loss)
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
    del spec

  def test_support_loss_decreases_on_separable_episode(self):
    cfg = config_lib.LearnerConfig(num_ways=2, num_filters=8, num_blocks=2,
                                   image_size=8)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 0.2, size=(6, 8, 8, 1))
    images[0::2, :4] += 0.8   # class 0: top half lit
    images[1::2, 4:] += 0.8   # class 1: bottom half lit
    labels = tf.constant([0, 1] * 3)
    from meta_lstm_tf import meta_lstm_layer  # pylint: disable=g-import-not-at-top
    layer = meta_lstm_layer.MetaLSTMLayer(cfg)  # paper initialisation
    result = inner_loop.adapt(
        layer.meta_weights(), tf.convert_to_tensor(layer.initial_params),
        tf.constant(images, tf.float32), labels, learner_config=cfg,
        inner_steps=8)
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
    result = inner_loop.adapt(meta_lstm_cell.MetaLSTMWeights(*meta[:-1]),
                              meta[-1], support, labels, learner_config=TINY,
                              inner_steps=STEPS, record_gates=True)
    p = learner.num_params(TINY)
    self.assertEqual(result.forget_gates.shape, (STEPS, p))
    self.assertAllClose(tf.reduce_mean(result.forget_gates, axis=1),
                        result.forget_gate_mean)
