"""The Keras layer: initialisation, serialization, call == pure step."""

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf.rules import meta_lstm
from meta_lstm_tf.rules import meta_lstm_cell

SMALL = config_lib.LearnerConfig(num_ways=3, num_filters=4, num_blocks=2,
                                 image_size=8)


class MetaLSTMRuleTest(tf.test.TestCase):

  def test_old_name_and_registered_name_still_load(self):
    # Saved Keras configs of earlier versions name the class
    # `meta_lstm_tf>MetaLSTMLayer`; code may import the old name.
    self.assertIs(meta_lstm.MetaLSTMLayer, meta_lstm.MetaLSTMRule)
    self.assertEqual(keras.saving.get_registered_name(meta_lstm.MetaLSTMRule),
                     'meta_lstm_tf>MetaLSTMLayer')
    layer = meta_lstm.MetaLSTMRule(SMALL, hidden_size=3, seed=2)
    config = keras.saving.serialize_keras_object(layer)
    self.assertEqual(config['registered_name'], 'meta_lstm_tf>MetaLSTMLayer')
    restored = keras.saving.deserialize_keras_object(config)
    self.assertIsInstance(restored, meta_lstm.MetaLSTMRule)
    self.assertEqual(restored.hidden_size, 3)

  def test_initialisation_as_original_code(self):
    layer = meta_lstm.MetaLSTMRule(SMALL, hidden_size=20, seed=3)
    for v in (layer.lstm_kernel, layer.lstm_recurrent_kernel, layer.lstm_bias,
              layer.forget_kernel, layer.input_kernel):
      self.assertAllInRange(v, -0.01, 0.01)
    self.assertAllInRange(layer.forget_bias, 4.0, 5.0)
    self.assertAllInRange(layer.input_bias, -5.0, -4.0)
    self.assertEqual(layer.initial_params.shape, (learner.num_params(SMALL),))
    # theta_0 is a trainable meta-parameter.
    self.assertIn(id(layer.initial_params),
                  [id(v) for v in layer.trainable_variables])
    self.assertLen(layer.trainable_variables, 8)

  def test_seed_is_reproducible(self):
    a = meta_lstm.MetaLSTMRule(SMALL, seed=5)
    b = meta_lstm.MetaLSTMRule(SMALL, seed=5)
    c = meta_lstm.MetaLSTMRule(SMALL, seed=6)
    for va, vb in zip(a.weights, b.weights):
      self.assertAllEqual(va, vb)
    self.assertNotAllClose(a.lstm_kernel, c.lstm_kernel)

  def test_config_and_serialization_round_trip(self):
    layer = meta_lstm.MetaLSTMRule(SMALL, hidden_size=7,
                                          preprocess_p=8.0, seed=2,
                                          name='meta')
    config = layer.get_config()
    clone = meta_lstm.MetaLSTMRule.from_config(config)
    self.assertEqual(clone.get_config(), config)
    serialized = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(serialized)
    self.assertIsInstance(restored, meta_lstm.MetaLSTMRule)
    self.assertEqual(restored.hidden_size, 7)
    self.assertEqual(restored.learner_config, SMALL)
    for a, b in zip(layer.weights, restored.weights):
      self.assertAllEqual(a, b)  # same seed, same initial values

  def test_call_delegates_to_pure_step(self):
    layer = meta_lstm.MetaLSTMRule(SMALL, hidden_size=5)
    rng = np.random.default_rng(0)
    grad = tf.constant(rng.normal(size=layer.num_coordinates), tf.float32)
    loss = tf.constant(1.3)
    state = layer.initial_state(
        layer.meta_weights(), tf.convert_to_tensor(layer.initial_params))
    got = layer(grad, loss, state)
    want = meta_lstm_cell.meta_lstm_step(
        meta_lstm_cell.prepare(layer.meta_weights()), state, grad, loss,
        layer.preprocess_p)
    for g, w in zip(got, want):
      self.assertAllClose(g, w)


def _first_step(layer, grad):
  """The state after one update from theta_0 (support loss 1), read inside
  any enclosing tape."""
  weights = layer.prepare(layer.meta_weights())
  return layer.update(weights, layer.initial_state(
      weights, tf.convert_to_tensor(layer.initial_params)), grad,
                      tf.constant(1.0))


class GateInitTest(tf.test.TestCase):
  """`MetaLearnerConfig.gate_init`: the initial gates are the configured ones."""

  def _first_gates(self, meta_config):
    layer = meta_lstm.MetaLSTMRule.from_experiment(SMALL, meta_config,
                                                          seed=1)
    weights = layer.prepare(layer.meta_weights())
    rng = np.random.default_rng(0)
    grad = tf.constant(rng.normal(size=layer.num_coordinates), tf.float32)
    state = layer.initial_state(weights,
                                tf.convert_to_tensor(layer.initial_params))
    state = layer.update(weights, state, grad, tf.constant(1.6))
    return layer, state.forget_gate.numpy(), state.input_gate.numpy()

  def test_inner_lr_init_gives_the_configured_gates(self):
    for lr, forget in ((0.1, 0.9999), (0.03, 0.99)):
      meta_config = config_lib.MetaLearnerConfig(
          inner_lr=lr, gate_init='inner_lr', forget_gate_init=forget)
      layer, forget_gate, input_gate = self._first_gates(meta_config)
      # The biases are exactly the logits of the configured values ...
      self.assertAllClose(layer.input_bias, np.log(lr / (1 - lr)),
                          rtol=1e-6)
      self.assertAllClose(layer.forget_bias,
                          np.log(forget / (1 - forget)), rtol=1e-6)
      # ... and the other inputs (weights U(-0.01, 0.01)) move the first
      # gates by well under 1 %.
      self.assertAllClose(input_gate, np.full_like(input_gate, lr),
                          rtol=0.01)
      self.assertAllClose(1 - forget_gate,
                          np.full_like(forget_gate, 1 - forget), rtol=0.05)

  def test_paper_init_stays_reachable(self):
    meta_config = config_lib.MetaLearnerConfig(gate_init='paper')
    layer, forget_gate, input_gate = self._first_gates(meta_config)
    self.assertAllInRange(layer.forget_bias, 4.0, 5.0)
    self.assertAllInRange(layer.input_bias, -5.0, -4.0)
    sigmoid = lambda x: 1 / (1 + np.exp(-x))
    self.assertAllInRange(input_gate, sigmoid(-5.1), sigmoid(-3.9))
    self.assertAllInRange(forget_gate, sigmoid(3.9), sigmoid(5.1))

  def test_bad_gate_init_is_rejected(self):
    with self.assertRaisesRegex(ValueError, 'gate_init'):
      config_lib.MetaLearnerConfig(gate_init='zeros').validate()
    with self.assertRaisesRegex(ValueError, 'inner_lr=1.0'):
      config_lib.MetaLearnerConfig(inner_lr=1.0,
                                   gate_init='inner_lr').validate()
    # sgd's learning rate is not a gate: it may be >= 1.
    config_lib.MetaLearnerConfig(update_rule='sgd', inner_lr=1.0).validate()


class GateBiasTest(tf.test.TestCase):
  """`gate_bias`: shared (the paper), per learner tensor, per coordinate."""

  def _layer(self, gate_bias):
    return meta_lstm.MetaLSTMRule.from_experiment(
        SMALL, config_lib.MetaLearnerConfig(gate_bias=gate_bias), seed=2)

  def test_shapes(self):
    spec = learner.param_spec(SMALL)
    num = learner.num_params(SMALL)
    for gate_bias, shape in (('shared', ()), ('per_tensor', (len(spec),)),
                             ('per_coordinate', (num,))):
      layer = self._layer(gate_bias)
      self.assertEqual(tuple(layer.input_bias.shape), shape)
      self.assertEqual(tuple(layer.forget_bias.shape), shape)
      weights = layer.meta_weights()
      want = () if gate_bias == 'shared' else (num,)
      self.assertEqual(tuple(weights.input_bias.shape), want)

  def test_per_tensor_bias_is_each_coordinates_tensor_bias(self):
    layer = self._layer('per_tensor')
    spec = learner.param_spec(SMALL)
    values = np.arange(len(spec), dtype=np.float32) - 7.0
    layer.input_bias.assign(values)
    layer.forget_bias.assign(values + 20)
    weights = layer.meta_weights()
    flat = learner.unflatten(weights.input_bias, spec)
    for index, name in enumerate(spec):
      self.assertAllEqual(flat[name], np.full(spec[name], values[index]))
    # The step sees them: with zero gate kernels, i = sigmoid(bias) per
    # tensor.
    layer.input_kernel.assign(np.zeros(layer.input_kernel.shape))
    grad = tf.ones([layer.num_coordinates])
    prepared = layer.prepare(layer.meta_weights())
    state = layer.update(prepared, layer.initial_state(
        prepared, tf.convert_to_tensor(layer.initial_params)), grad,
                         tf.constant(1.0))
    gates = learner.unflatten(state.input_gate, spec)
    for index, name in enumerate(spec):
      self.assertAllClose(gates[name],
                          np.full(spec[name], 1 / (1 + np.exp(-values[index]))))

  def test_every_bias_gets_its_own_gradient(self):
    for gate_bias in ('per_tensor', 'per_coordinate'):
      layer = self._layer(gate_bias)
      rng = np.random.default_rng(1)
      grad = tf.constant(rng.normal(size=layer.num_coordinates), tf.float32)
      with tf.GradientTape() as tape:
        state = _first_step(layer, grad)
        loss = tf.reduce_sum(tf.square(state.params))
      d_input, d_forget = tape.gradient(loss, [layer.input_bias,
                                               layer.forget_bias])
      d_input = tf.convert_to_tensor(d_input).numpy()
      self.assertEqual(d_input.shape, tuple(layer.input_bias.shape))
      self.assertTrue(np.all(d_input != 0), gate_bias)
      self.assertLen(np.unique(d_input), d_input.size)
      self.assertIsNotNone(d_forget)

  def test_bias_scale_keeps_the_gates_and_scales_the_gradient(self):
    meta = dict(gate_bias='per_tensor', gate_init='inner_lr', inner_lr=0.2)
    plain = meta_lstm.MetaLSTMRule.from_experiment(
        SMALL, config_lib.MetaLearnerConfig(**meta), seed=2)
    scaled = meta_lstm.MetaLSTMRule.from_experiment(
        SMALL, config_lib.MetaLearnerConfig(gate_bias_scale=10.0, **meta),
        seed=2)
    self.assertAllClose(scaled.input_bias * 10.0, plain.input_bias)
    grad = tf.constant(np.random.default_rng(3).normal(
        size=plain.num_coordinates), tf.float32)
    d_bias = []
    for layer in (plain, scaled):
      with tf.GradientTape() as tape:
        state = _first_step(layer, grad)
        loss = tf.reduce_sum(tf.square(state.params))
      d_bias.append(tf.convert_to_tensor(
          tape.gradient(loss, layer.input_bias)).numpy())
      if layer is plain:
        want = state
    for got, expected in zip(state, want):
      self.assertAllClose(got, expected, rtol=1e-6, atol=1e-7)
    self.assertAllClose(d_bias[1], 10.0 * d_bias[0], rtol=1e-4)
