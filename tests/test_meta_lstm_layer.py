"""The Keras layer: initialisation, serialization, call == pure step."""

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import learner
from meta_lstm_tf import meta_lstm_cell
from meta_lstm_tf import meta_lstm_layer

SMALL = config_lib.LearnerConfig(num_ways=3, num_filters=4, num_blocks=2,
                                 image_size=8)


class MetaLSTMLayerTest(tf.test.TestCase):

  def test_initialisation_as_original_code(self):
    layer = meta_lstm_layer.MetaLSTMLayer(SMALL, hidden_size=20, seed=3)
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
    a = meta_lstm_layer.MetaLSTMLayer(SMALL, seed=5)
    b = meta_lstm_layer.MetaLSTMLayer(SMALL, seed=5)
    c = meta_lstm_layer.MetaLSTMLayer(SMALL, seed=6)
    for va, vb in zip(a.weights, b.weights):
      self.assertAllEqual(va, vb)
    self.assertNotAllClose(a.lstm_kernel, c.lstm_kernel)

  def test_config_and_serialization_round_trip(self):
    layer = meta_lstm_layer.MetaLSTMLayer(SMALL, hidden_size=7,
                                          preprocess_p=8.0, seed=2,
                                          name='meta')
    config = layer.get_config()
    clone = meta_lstm_layer.MetaLSTMLayer.from_config(config)
    self.assertEqual(clone.get_config(), config)
    serialized = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(serialized)
    self.assertIsInstance(restored, meta_lstm_layer.MetaLSTMLayer)
    self.assertEqual(restored.hidden_size, 7)
    self.assertEqual(restored.learner_cfg, SMALL)
    for a, b in zip(layer.weights, restored.weights):
      self.assertAllEqual(a, b)  # same seed, same initial values

  def test_call_delegates_to_pure_step(self):
    layer = meta_lstm_layer.MetaLSTMLayer(SMALL, hidden_size=5)
    rng = np.random.default_rng(0)
    grad = tf.constant(rng.normal(size=layer.num_coordinates), tf.float32)
    loss = tf.constant(1.3)
    state = layer.initial_state(
        layer.meta_weights(), tf.convert_to_tensor(layer.initial_params))
    got = layer(grad, loss, state)
    want = meta_lstm_cell.meta_lstm_step(layer.meta_weights(), state, grad,
                                         loss, layer.preprocess_p)
    for g, w in zip(got, want):
      self.assertAllClose(g, w)
