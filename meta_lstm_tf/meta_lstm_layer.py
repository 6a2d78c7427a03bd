"""Keras layer that owns the meta-learner's variables.

Shapes: P learner coordinates, D hidden units of layer 1.

The layer holds every meta-parameter: the first LSTM layer, the forget and
input gate weights of the second layer, and the learned initial learner
parameters theta_0 (the second layer's initial cell state, trained like every
other meta-weight). Its `call` packs the variables and delegates to the pure
`meta_lstm_cell.meta_lstm_step`; the inner loop reads the same packed weights
through `meta_weights()`. It is the `meta_lstm` rule of `update_rule.UpdateRule`.
"""

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import learner
from meta_lstm_tf import meta_lstm_cell
from meta_lstm_tf import update_rule


class _UniformRange(keras.initializers.Initializer):
  """U(low, high), seeded; a fixed range rather than Keras' symmetric one."""

  def __init__(self, low, high, seed):
    self.low, self.high, self.seed = float(low), float(high), int(seed)

  def __call__(self, shape, dtype=None):
    rng = np.random.default_rng(self.seed)
    value = rng.uniform(self.low, self.high, size=shape)
    return tf.constant(value, dtype=dtype or 'float32')

  def get_config(self):
    return {'low': self.low, 'high': self.high, 'seed': self.seed}


@keras.saving.register_keras_serializable(package='meta_lstm_tf')
class MetaLSTMLayer(update_rule.UpdateRule):
  """The coordinate-wise two-layer meta-learner LSTM of Ravi & Larochelle.

  One set of weights is shared by all P coordinates. Initialisation follows the
  original code: every weight U(-s, s) with s = 0.01, forget bias U(4, 5),
  input bias U(-5, -4), so that training starts close to gradient descent with
  a small learning rate. theta_0 starts from `learner.init_params`.

  Call: `layer(grad, loss, state)` -> next `MetaLSTMState`, where grad is [P],
  loss [] and state a `meta_lstm_cell.MetaLSTMState`.
  """

  def __init__(self, learner_config: dict, hidden_size: int = 20,
               preprocess_p: float = 10.0, weight_init_scale: float = 0.01,
               forget_bias_range=(4.0, 5.0), input_bias_range=(-5.0, -4.0),
               seed: int = 0, **kwargs):
    super().__init__(learner_config, seed=seed, **kwargs)
    self.hidden_size = int(hidden_size)
    self.preprocess_p = float(preprocess_p)
    self.weight_init_scale = float(weight_init_scale)
    self.forget_bias_range = tuple(float(v) for v in forget_bias_range)
    self.input_bias_range = tuple(float(v) for v in input_bias_range)
    self._create_variables()

  @classmethod
  def config_kwargs(cls, meta_config: config_lib.MetaLearnerConfig) -> dict:
    return dict(hidden_size=meta_config.hidden_size,
                preprocess_p=meta_config.preprocess_p,
                weight_init_scale=meta_config.weight_init_scale,
                forget_bias_range=meta_config.forget_bias_range,
                input_bias_range=meta_config.input_bias_range)

  def _create_variables(self):
    d, s = self.hidden_size, self.weight_init_scale

    def uniform(i, low, high):
      return _UniformRange(low, high, seed=self.seed * 1000 + i)

    self.lstm_kernel = self.add_weight(
        name='lstm_kernel', shape=(4, 4 * d), initializer=uniform(1, -s, s))
    self.lstm_recurrent_kernel = self.add_weight(
        name='lstm_recurrent_kernel', shape=(d, 4 * d),
        initializer=uniform(2, -s, s))
    self.lstm_bias = self.add_weight(
        name='lstm_bias', shape=(4 * d,), initializer=uniform(3, -s, s))
    self.forget_kernel = self.add_weight(
        name='forget_kernel', shape=(d + 2,), initializer=uniform(4, -s, s))
    self.forget_bias = self.add_weight(
        name='forget_bias', shape=(),
        initializer=uniform(5, *self.forget_bias_range))
    self.input_kernel = self.add_weight(
        name='input_kernel', shape=(d + 2,), initializer=uniform(6, -s, s))
    self.input_bias = self.add_weight(
        name='input_bias', shape=(),
        initializer=uniform(7, *self.input_bias_range))
    self._create_initial_params()
    self.built = True

  def meta_weights(self) -> meta_lstm_cell.MetaLSTMWeights:
    """The gate and LSTM weights as tensors (reads the variables)."""
    return meta_lstm_cell.MetaLSTMWeights(*(
        tf.convert_to_tensor(v) for v in (
            self.lstm_kernel, self.lstm_recurrent_kernel, self.lstm_bias,
            self.forget_kernel, self.forget_bias, self.input_kernel,
            self.input_bias)))

  def initial_state(self, weights: meta_lstm_cell.MetaLSTMWeights,
                    params: tf.Tensor) -> meta_lstm_cell.MetaLSTMState:
    hidden_size = weights.lstm_recurrent_kernel.shape[0]
    return meta_lstm_cell.initial_state(params, hidden_size)

  def update(self, weights: meta_lstm_cell.MetaLSTMWeights,
             state: meta_lstm_cell.MetaLSTMState, grad: tf.Tensor,
             loss: tf.Tensor) -> meta_lstm_cell.MetaLSTMState:
    return meta_lstm_cell.meta_lstm_step(weights, state, grad, loss,
                                         self.preprocess_p)

  def call(self, grad, loss, state):
    return self.update(self.meta_weights(),
                       meta_lstm_cell.MetaLSTMState(*state), grad, loss)

  def get_config(self):
    base = super().get_config()
    base.update({
        'hidden_size': self.hidden_size,
        'preprocess_p': self.preprocess_p,
        'weight_init_scale': self.weight_init_scale,
        'forget_bias_range': list(self.forget_bias_range),
        'input_bias_range': list(self.input_bias_range),
    })
    return base
