"""A Keras model as the learner: the same adaptation as the built-in learner
when it is the same network, exact second-order meta-gradients through a
different one (finite differences, float64), and clear errors."""

import functools
import os

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf.learners import conv_ops as learner_lib
from meta_lstm_tf import learners
from meta_lstm_tf.rules import meta_lstm
from meta_lstm_tf.rules import meta_lstm_cell
from meta_lstm_tf.rules import sgd
from tests.fixtures import gradients

CONFIG = config_lib.LearnerConfig(num_ways=3, num_filters=4, num_blocks=2,
                                  image_size=8, channels=1)
STEPS = 3


def same_as_builtin(config=CONFIG, dtype='float32'):
  """A Sequential of the built-in architecture with its initial weights."""
  layers = [keras.Input((config.image_size, config.image_size,
                         config.channels), dtype=dtype)]
  for _ in range(config.num_blocks):
    layers += [keras.layers.Conv2D(config.num_filters, 3, padding='same',
                                   dtype=dtype),
               keras.layers.BatchNormalization(epsilon=config.bn_epsilon,
                                               dtype=dtype),
               keras.layers.ReLU(dtype=dtype),
               keras.layers.MaxPooling2D(2, dtype=dtype)]
  layers += [keras.layers.Flatten(dtype=dtype),
             keras.layers.Dense(config.num_ways, dtype=dtype)]
  model = keras.Sequential(layers)
  init = learner_lib.init_params(config, seed=3)
  for variable, value in zip(model.trainable_variables, init.values()):
    variable.assign(value.astype(dtype))
  return model


def other_model(dtype='float64'):
  """Another depth and width, a Dense hidden layer, Keras BN."""
  return keras.Sequential([
      keras.Input((6, 6, 1), dtype=dtype),
      keras.layers.Conv2D(3, 3, dtype=dtype),
      keras.layers.BatchNormalization(dtype=dtype),
      keras.layers.Activation('tanh', dtype=dtype),
      keras.layers.Flatten(dtype=dtype),
      keras.layers.Dense(5, activation='tanh', dtype=dtype),
      keras.layers.Dense(2, dtype=dtype),
  ])


def episode(rng, num_ways, side, dtype=np.float32, shots=2, queries=3):
  support_labels = np.repeat(np.arange(num_ways), shots).astype(np.int32)
  query_labels = np.repeat(np.arange(num_ways), queries).astype(np.int32)
  return (tf.constant(rng.uniform(size=(num_ways * shots, side, side,
                                        1)).astype(dtype)),
          tf.constant(support_labels),
          tf.constant(rng.uniform(size=(num_ways * queries, side, side,
                                        1)).astype(dtype)),
          tf.constant(query_labels))


class SameNetworkTest(tf.test.TestCase, parameterized.TestCase):

  def test_layout_and_theta0(self):
    keras_learner = learners.KerasLearner(same_as_builtin())
    builtin = learners.ConvLearner(CONFIG)
    self.assertEqual(keras_learner.num_coordinates, builtin.num_coordinates)
    self.assertEqual(list(keras_learner.param_spec.values()),
                     list(builtin.param_spec.values()))
    self.assertEqual((keras_learner.num_ways, keras_learner.image_size,
                      keras_learner.channels), (3, 8, 1))
    self.assertAllEqual(keras_learner.initial_params(),
                        learner_lib.flatten(
                            learner_lib.init_params(CONFIG, seed=3),
                            builtin.param_spec))

  @parameterized.product(second_order=(False, True),
                         use_support_stats=(False, True))
  def test_same_adaptation_as_the_builtin_learner(self, second_order,
                                                  use_support_stats):
    model = same_as_builtin()
    keras_rule = meta_lstm.MetaLSTMRule(model, hidden_size=3,
                                         gate_bias='per_tensor')
    builtin_rule = meta_lstm.MetaLSTMRule(CONFIG, hidden_size=3,
                                           gate_bias='per_tensor', seed=3)
    for a, b in zip(builtin_rule.variables, keras_rule.variables):
      a.assign(b)  # Same meta-LSTM weights; theta_0 is equal already.
    data = episode(np.random.default_rng(0), 3, 8)

    def run(rule):
      with tf.GradientTape() as tape:
        result = inner_loop.adapt(
            rule, rule.meta_weights(), tf.convert_to_tensor(
                rule.initial_params), data[0], data[1], inner_steps=STEPS,
            second_order=second_order)
        logits = inner_loop.query_logits(result, data[2], rule.learner,
                                         use_support_stats=use_support_stats)
        loss = learner_lib.loss_and_accuracy(logits, data[3])[0]
      grads = tape.gradient(loss, rule.trainable_variables)
      return result, logits, [tf.convert_to_tensor(g) for g in grads]

    keras_result, keras_logits, keras_grads = run(keras_rule)
    result, logits, grads = run(builtin_rule)
    self.assertAllClose(keras_result.support_losses, result.support_losses,
                        rtol=1e-5, atol=1e-6)
    self.assertAllClose(keras_result.params, result.params, rtol=1e-5,
                        atol=1e-6)
    for a, b in zip(keras_result.bn_stats.means + keras_result.bn_stats.variances,
                    result.bn_stats.means + result.bn_stats.variances):
      self.assertAllClose(a, b, rtol=1e-5, atol=1e-6)
    self.assertAllClose(keras_logits, logits, rtol=1e-4, atol=1e-5)
    for a, b in zip(keras_grads, grads):
      self.assertAllClose(a, b, rtol=1e-3, atol=1e-6)
    # The support loss went down: the rule adapted the Keras model.
    self.assertLess(float(keras_result.support_losses[-1]),
                    float(keras_result.support_losses[0]))

  def test_the_model_is_not_mutated(self):
    model = same_as_builtin()
    before = [v.numpy().copy() for v in model.variables]
    momenta = [l.momentum for l in model.layers
               if isinstance(l, keras.layers.BatchNormalization)]
    rule = sgd.SGDRule(model, learning_rate=0.5)
    data = episode(np.random.default_rng(1), 3, 8)
    inner_loop.adapt(rule, rule.meta_weights(),
                     tf.convert_to_tensor(rule.initial_params), data[0],
                     data[1], inner_steps=2)
    for old, variable in zip(before, model.variables):
      self.assertAllEqual(old, variable.numpy())
    self.assertEqual(momenta, [l.momentum for l in model.layers
                               if isinstance(l,
                                             keras.layers.BatchNormalization)])
    self.assertNotIn('_moments', model.layers[1].__dict__)


@functools.lru_cache(maxsize=None)
def _float64_rule():
  return meta_lstm.MetaLSTMRule(other_model(), hidden_size=3)


class SecondOrderTest(tf.test.TestCase):

  def test_second_order_matches_finite_differences(self):
    rule = _float64_rule()
    rng = np.random.default_rng(0)
    weights = gradients.meta_lstm_weights(rng, hidden=3)
    meta = [tf.constant(w, tf.float64) for w in weights] + [
        tf.constant(rule.learner.initial_params())]
    self.assertEqual(meta[-1].dtype, tf.float64)
    data = episode(rng, 2, 6, np.float64)

    def loss_fn(meta):
      result = inner_loop.adapt(
          rule, meta_lstm_cell.MetaLSTMWeights(*meta[:-1]), meta[-1],
          data[0], data[1], inner_steps=STEPS, second_order=True)
      # Batch statistics at the queries: the accumulated support statistics
      # are constants to the meta-gradient (as the built-in learner's).
      logits = inner_loop.query_logits(result, data[2], rule.learner,
                                       use_support_stats=False)
      return learner_lib.loss_and_accuracy(logits, data[3])[0]

    def grad_fn(meta):
      with tf.GradientTape() as tape:
        tape.watch(meta)
        loss = loss_fn(meta)
      return tape.gradient(loss, meta)

    # eps small: the loss's third derivatives are large here (at 1e-5 the
    # central difference is off by 5e-4, at 1e-7 it agrees to 1e-10).
    gradients.assert_matches_finite_differences(self, loss_fn, grad_fn(meta),
                                                meta, rng, eps=1e-7)

  def test_keras_own_moments_would_be_wrong(self):
    """The check above can fail: with tf.nn.moments' stop_gradient (Keras's
    own BatchNormalization) the second-order gradient differs."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(5, 3)))
    weights = tf.constant(rng.uniform(0.5, 1.0, size=(5, 3)))
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        _, keras_variance = tf.nn.moments(x, [0])
        loss = tf.reduce_sum(keras_variance ** 2)
      grad = inner.gradient(loss, x)
      second = tf.reduce_sum(grad * weights)
    keras_hessian_vector = outer.gradient(second, x)
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        variance = tf.reduce_mean(tf.square(x - tf.reduce_mean(x, 0)), 0)
        loss = tf.reduce_sum(variance ** 2)
      grad = inner.gradient(loss, x)
      second = tf.reduce_sum(grad * weights)
    self.assertNotAllClose(keras_hessian_vector, outer.gradient(second, x))


class ErrorsTest(tf.test.TestCase):

  def test_unbuilt_model(self):
    with self.assertRaisesRegex(ValueError, 'not built'):
      learners.KerasLearner(keras.Sequential([keras.layers.Dense(2)]))

  def test_not_square(self):
    model = keras.Sequential([keras.Input((4, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    with self.assertRaisesRegex(ValueError, 'square'):
      learners.KerasLearner(model)

  def test_output_not_logits(self):
    model = keras.Sequential([keras.Input((4, 4, 1)),
                              keras.layers.Dense(2)])
    with self.assertRaisesRegex(ValueError, r'expected logits \[S, N\]'):
      learners.KerasLearner(model)

  def test_bn_over_another_axis(self):
    model = keras.Sequential([keras.Input((4, 4, 2)),
                              keras.layers.BatchNormalization(axis=1),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with self.assertRaisesRegex(ValueError, 'axis'):
      learners.KerasLearner(model)

  def test_as_learner(self):
    self.assertIsInstance(learners.as_learner(CONFIG), learners.ConvLearner)
    self.assertIsInstance(learners.as_learner(same_as_builtin()),
                          learners.KerasLearner)
    with self.assertRaisesRegex(TypeError, 'cannot make a learner'):
      learners.as_learner(3)


class MetaLearnerModelTest(tf.test.TestCase):

  def test_only_the_rule_is_trainable_and_weights_round_trip(self):
    from meta_lstm_tf import meta_learner  # pylint: disable=g-import-not-at-top
    model = meta_learner.MetaLearner(same_as_builtin(), rule='sgd')
    self.assertEqual([v.path for v in model.trainable_weights],
                     [v.path for v in model.rule.trainable_weights])
    self.assertLen(model.trainable_weights, 1)  # theta_0 (sgd: fixed rate).
    self.assertEqual(model.rule.learner.num_coordinates,
                     model.trainable_weights[0].shape[0])
    # The learner's own weights are saved with the model.
    learner_paths = {v.path for v in model.learner_model.weights}
    self.assertTrue(learner_paths <=
                    {v.path for v in model.non_trainable_weights})
    path = os.path.join(self.get_temp_dir(), 'm.weights.h5')
    model.rule.initial_params.assign(
        model.rule.initial_params + 1.0)
    model.save_weights(path)
    other = meta_learner.MetaLearner.from_config(model.get_config())
    self.assertNotAllClose(other.rule.initial_params,
                           model.rule.initial_params)
    other.load_weights(path)
    self.assertAllClose(other.rule.initial_params, model.rule.initial_params)

  def test_the_optimizer_is_built_for_the_rule_alone(self):
    from meta_lstm_tf import meta_learner  # pylint: disable=g-import-not-at-top
    model = meta_learner.MetaLearner(same_as_builtin(), rule='meta_sgd')
    # As BackupAndRestore and compile() build it.
    self.assertEqual([id(v) for v in model.trainable_variables],
                     [id(v) for v in model.rule.trainable_variables])
    self.assertLen(model.trainable_variables, 2)  # Rates and theta_0.
    learner_ids = {id(v) for v in model.learner_model.variables}
    self.assertTrue(learner_ids <=
                    {id(v) for v in model.non_trainable_variables})
    self.assertFalse(learner_ids & {id(v) for v in model.trainable_variables})


class _Block(keras.layers.Layer):
  """A nested layer owning a BatchNormalization (found at any depth)."""

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    self.conv = keras.layers.Conv2D(filters, 3, padding='same')
    self.norm = keras.layers.BatchNormalization()

  def call(self, x, training=None):
    return keras.ops.relu(self.norm(self.conv(x), training=training))


class _Subclassed(keras.Model):

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.block = _Block(4)
    self.pool = keras.layers.GlobalAveragePooling2D()
    self.head = keras.layers.Dense(3)

  def call(self, x, training=None):
    return self.head(self.pool(self.block(x, training=training)))


class ModelKindsTest(tf.test.TestCase):

  def _adapt(self, learner, seed=0):
    rule = meta_lstm.MetaLSTMRule(learner, hidden_size=3, seed=3)
    data = episode(np.random.default_rng(seed), 3, 8)
    result = inner_loop.adapt(rule, rule.meta_weights(),
                              tf.convert_to_tensor(rule.initial_params),
                              data[0], data[1], inner_steps=STEPS)
    return rule, result

  def test_functional_model_is_the_sequential_one(self):
    sequential = same_as_builtin()
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for layer in sequential.layers:
      x = layer(x)
    functional = keras.Model(inputs, x)
    _, expected = self._adapt(sequential)
    _, result = self._adapt(functional)
    self.assertAllClose(result.support_losses, expected.support_losses)
    self.assertAllClose(result.params, expected.params)

  def test_subclassed_model_with_nested_batch_norm(self):
    model = _Subclassed()
    model(tf.zeros((1, 8, 8, 1)))  # Built by a call: no input_shape known.
    with self.assertRaisesRegex(ValueError, 'input_shape'):
      learners.KerasLearner(model)
    learner = learners.KerasLearner(model, input_shape=(8, 8, 1))
    self.assertEqual(learner.num_ways, 3)
    self.assertLen(learner.init_stats().means, 1)  # The nested BN.
    rule, result = self._adapt(learner)
    self.assertLess(float(result.support_losses[-1]),
                    float(result.support_losses[0]))
    # The BN statistics are the support passes' (not the reset values).
    self.assertNotAllClose(result.bn_stats.means[0], np.zeros(4))
    self.assertEqual(float(result.bn_stats.count), STEPS + 1)
    self.assertIs(rule.learner, learner)
