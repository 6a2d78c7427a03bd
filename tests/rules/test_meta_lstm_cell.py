"""The meta-LSTM cell against a NumPy reference, eagerly and in tf.function."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.rules import meta_lstm
from meta_lstm_tf.rules import meta_lstm_cell
from tests.fixtures import reference


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_step(w, state, grad, loss, p=10.0):
  """Reference: the module docstring's equations, gates fed back as values."""
  (kx, kh, b, wf, bf, wi, bi) = w
  h, c, f_prev, i_prev, theta = state
  x = np.concatenate([
      reference.numpy_preprocess(grad, p),
      np.broadcast_to(reference.numpy_preprocess(loss, p),
                      (grad.shape[0], 2))
  ], axis=1)
  z = x @ kx + h @ kh + b
  d = h.shape[1]
  a_i, a_f, a_g, a_o = z[:, :d], z[:, d:2 * d], z[:, 2 * d:3 * d], z[:, 3 * d:]
  c = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_g)
  h = sigmoid(a_o) * np.tanh(c)
  f = sigmoid(h @ wf[:d] + theta * wf[d] + f_prev * wf[d + 1] + bf)
  i = sigmoid(h @ wi[:d] + theta * wi[d] + i_prev * wi[d + 1] + bi)
  theta = f * theta - i * grad
  return (h, c, f, i, theta)


def random_weights(rng, d, scale=0.5):
  shapes = [(4, 4 * d), (d, 4 * d), (4 * d,), (d + 2,), (), (d + 2,), ()]
  return [rng.uniform(-scale, scale, size=s) for s in shapes]


class MetaLSTMCellTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(('eager', False), ('tf_function', True))
  def test_three_steps_match_numpy(self, use_function):
    rng = np.random.default_rng(1)
    num, d = 7, 3
    w = random_weights(rng, d)
    theta0 = rng.normal(size=num)
    step = meta_lstm_cell.meta_lstm_step
    if use_function:
      step = tf.function(step)
    tf_w = meta_lstm_cell.MetaLSTMWeights(*(tf.constant(v) for v in w))
    state = meta_lstm_cell.initial_state(tf.constant(theta0), d)
    np_state = (np.zeros((num, d)), np.zeros((num, d)), np.zeros(num),
                np.zeros(num), theta0)
    for t in range(3):
      # Mix of large, tiny (second preprocessing branch) and zero gradients.
      grad = rng.normal(size=num) * np.array([1, 1e-6, 1, 0, 1e-2, 3, 1e-5])
      loss = 2.0 / (t + 1)
      state = step(meta_lstm_cell.prepare(tf_w), state, tf.constant(grad),
                   tf.constant(loss, tf.float64))
      np_state = numpy_step(w, np_state, grad, loss)
      # The cell keeps the LSTM state as [D, P]; the reference as [P, D].
      got = state._replace(lstm_h=tf.transpose(state.lstm_h),
                           lstm_c=tf.transpose(state.lstm_c))
      for got_field, want_field in zip(got, np_state):
        self.assertAllClose(got_field, want_field, rtol=1e-10, atol=1e-12)

  def test_previous_gate_values_are_fed_back(self):
    # Only the f_{t-1} weight is non-zero: f_2 must equal sigmoid(w * f_1 + b).
    d = 2
    w = [np.zeros((4, 4 * d)), np.zeros((d, 4 * d)), np.zeros(4 * d),
         np.array([0., 0., 0., 3.0]), np.array(-1.0), np.zeros(d + 2),
         np.array(0.0)]
    tf_w = meta_lstm_cell.MetaLSTMWeights(*(tf.constant(v) for v in w))
    state = meta_lstm_cell.initial_state(tf.constant([1.0, 2.0],
                                                     tf.float64), d)
    grad, loss = tf.constant([0.1, 0.2], tf.float64), tf.constant(1.0,
                                                                  tf.float64)
    prepared = meta_lstm_cell.prepare(tf_w)
    state = meta_lstm_cell.meta_lstm_step(prepared, state, grad, loss)
    f1 = sigmoid(-1.0)  # f_0 = 0.
    self.assertAllClose(state.forget_gate, [f1, f1])
    state = meta_lstm_cell.meta_lstm_step(prepared, state, grad, loss)
    self.assertAllClose(state.forget_gate, [sigmoid(3.0 * f1 - 1.0)] * 2)

  @parameterized.named_parameters(('lr_0_1', 0.1), ('lr_0_01', 0.01))
  def test_unit_forget_and_constant_input_gate_is_sgd(self, lr):
    learner_config = config_lib.LearnerConfig(num_filters=2, num_blocks=1,
                                              image_size=4, num_ways=2)
    layer = meta_lstm.MetaLSTMRule(learner_config, hidden_size=3,
                                          dtype='float64')
    layer.forget_kernel.assign(np.zeros(5))
    layer.forget_bias.assign(100.0)  # sigmoid(100) == 1 in float64
    layer.input_kernel.assign(np.zeros(5))
    layer.input_bias.assign(np.log(lr / (1 - lr)))
    rng = np.random.default_rng(0)
    grad = tf.constant(rng.normal(size=layer.num_coordinates))
    state = layer.initial_state(
        layer.meta_weights(), tf.convert_to_tensor(layer.initial_params))
    theta0 = state.params.numpy()
    for _ in range(2):
      state = layer(grad, tf.constant(0.7, tf.float64), state)
      expected = theta0 - lr * grad.numpy()
      theta0 = expected
      self.assertAllClose(state.params, expected, rtol=1e-12, atol=1e-12)


class PreparedWeightsTest(tf.test.TestCase):

  def test_prepared_weights_match_numpy_for_each_bias_shape(self):
    # Shared (scalar) and per-coordinate ([P]) gate biases, as `prepare`
    # arranges them, give the reference's steps.
    rng = np.random.default_rng(3)
    num, d = 6, 4
    for bias_shape in ((), (num,)):
      w = random_weights(rng, d)
      w[4] = rng.uniform(-1, 1, size=bias_shape)
      w[6] = rng.uniform(-1, 1, size=bias_shape)
      tf_w = meta_lstm_cell.MetaLSTMWeights(*(tf.constant(v) for v in w))
      prepared = meta_lstm_cell.prepare(tf_w)
      theta0 = rng.normal(size=num)
      state = meta_lstm_cell.initial_state(tf.constant(theta0), d)
      np_state = (np.zeros((num, d)), np.zeros((num, d)), np.zeros(num),
                  np.zeros(num), theta0)
      grad = rng.normal(size=num)
      for _ in range(2):
        state = meta_lstm_cell.meta_lstm_step(
            prepared, state, tf.constant(grad), tf.constant(0.7, tf.float64))
        np_state = numpy_step(w, np_state, grad, 0.7)
        got = state._replace(lstm_h=tf.transpose(state.lstm_h),
                             lstm_c=tf.transpose(state.lstm_c))
        for got_field, want_field in zip(got, np_state):
          self.assertAllClose(got_field, want_field, rtol=1e-10, atol=1e-12)

  def test_layer_prepares_meta_weights_into_step_weights(self):
    layer = meta_lstm.MetaLSTMRule(
        config_lib.LearnerConfig(num_ways=2, num_filters=2, num_blocks=1,
                                 image_size=4).__dict__.copy(),
        hidden_size=3, gate_bias='per_tensor')
    prepared = layer.prepare(layer.meta_weights())
    self.assertIsInstance(prepared, meta_lstm_cell.StepWeights)
    self.assertEqual(prepared.gate_bias.shape, (2, layer.num_coordinates))
    state = layer.initial_state(prepared, layer.initial_params)
    self.assertEqual(state.lstm_h.shape, (3, layer.num_coordinates))
