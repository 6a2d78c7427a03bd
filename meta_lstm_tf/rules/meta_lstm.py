"""Keras layer that owns the meta-learner's variables.

Shapes: P learner coordinates, D hidden units of layer 1.

The layer holds every meta-parameter: the first LSTM layer, the forget and
input gate weights of the second layer, and the learned initial learner
parameters theta_0 (the second layer's initial cell state, trained like every
other meta-weight). Its `call` packs the variables and delegates to the pure
`meta_lstm_cell.meta_lstm_step`; the inner loop reads the same packed weights
through `meta_weights()`. It is the `meta_lstm` rule of `base.UpdateRule`.
"""

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.rules import base
from meta_lstm_tf.rules import meta_lstm_cell


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


# Registered under the class's first name, so saved configs of every version
# (`meta_lstm_tf>MetaLSTMLayer`) load.
@keras.saving.register_keras_serializable(package='meta_lstm_tf',
                                          name='MetaLSTMLayer')
class MetaLSTMRule(base.UpdateRule):
  """The coordinate-wise two-layer meta-learner LSTM of Ravi & Larochelle.

  One set of weights is shared by all P coordinates. Every weight starts
  U(-s, s) with s = 0.01, the gate biases U(low, high) over the given ranges:
  the original code's forget U(4, 5) and input U(-5, -4) (gradient descent
  with a step of about 0.01 and a forget gate of about 0.99), or, as
  `MetaLearnerConfig.gate_init='inner_lr'` gives, the constants
  logit(forget_gate_init) and logit(inner_lr) (low = high). theta_0 starts
  from `conv_ops.init_params`.

  `gate_bias`: the paper shares one forget and one input bias across all
  coordinates (`shared`); `per_tensor` learns one per learner tensor
  (conv1/kernel, bn1/scale, ...: layer-wise step sizes and decay, as
  MAML++'s per-layer learning rates) and `per_coordinate` one per
  coordinate (as Meta-SGD's learned rates). The gates stay the paper's
  coordinate-wise LSTM gates over [h_t, theta_{t-1}, gate_{t-1}] with
  weights shared by every coordinate; only their bias varies.

  `gate_bias_scale` s reparametrises the gate biases as b = s * v with the
  variable v (initialised to b / s): the gates are unchanged, but Adam, whose
  steps are about its learning rate whatever the gradient's scale, moves b
  s times faster. The biases live in logit space, where a step of 1e-3 moves
  a step size of 0.1 by 0.01 %; Meta-SGD's linear rates move by 1 %.

  Call: `layer(grad, loss, state)` -> next `MetaLSTMState`, where grad is [P],
  loss [] and state a `meta_lstm_cell.MetaLSTMState`.
  """

  def __init__(self, learner=None, hidden_size: int = 20,
               preprocess_p: float = 10.0, weight_init_scale: float = 0.01,
               forget_bias_range=(4.0, 5.0), input_bias_range=(-5.0, -4.0),
               gate_bias: str = 'shared', gate_bias_scale: float = 1.0,
               seed: int = 0, **kwargs):
    super().__init__(learner, seed=seed, **kwargs)
    if gate_bias not in config_lib.GATE_BIASES:
      raise ValueError(f'gate_bias={gate_bias!r}: must be one of '
                       f'{config_lib.GATE_BIASES}')
    self.gate_bias = gate_bias
    if not gate_bias_scale > 0:
      raise ValueError(f'gate_bias_scale={gate_bias_scale!r}: must be > 0')
    self.gate_bias_scale = float(gate_bias_scale)
    self.hidden_size = int(hidden_size)
    self.preprocess_p = float(preprocess_p)
    self.weight_init_scale = float(weight_init_scale)
    self.forget_bias_range = tuple(float(v) for v in forget_bias_range)
    self.input_bias_range = tuple(float(v) for v in input_bias_range)
    self._create_variables()

  @classmethod
  def config_kwargs(cls, meta_config: config_lib.MetaLearnerConfig) -> dict:
    forget_bias_range, input_bias_range = meta_config.gate_bias_ranges()
    return dict(hidden_size=meta_config.hidden_size,
                preprocess_p=meta_config.preprocess_p,
                weight_init_scale=meta_config.weight_init_scale,
                forget_bias_range=forget_bias_range,
                input_bias_range=input_bias_range,
                gate_bias=meta_config.gate_bias,
                gate_bias_scale=meta_config.gate_bias_scale)

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
    # The gate biases: one shared scalar (the paper), one per learner tensor
    # (gathered to [P] by `_tensor_ids`), or one per coordinate.
    bias_shape = {'shared': (),
                  'per_tensor': (len(self.param_spec),),
                  'per_coordinate': (self.num_coordinates,)}[self.gate_bias]
    sizes = [int(np.prod(shape)) for shape in self.param_spec.values()]
    self._tensor_ids = tf.constant(np.repeat(np.arange(len(sizes)), sizes),
                                   tf.int32)
    self.forget_bias = self.add_weight(
        name='forget_bias', shape=bias_shape,
        initializer=uniform(5, *(v / self.gate_bias_scale
                                 for v in self.forget_bias_range)))
    self.input_kernel = self.add_weight(
        name='input_kernel', shape=(d + 2,), initializer=uniform(6, -s, s))
    self.input_bias = self.add_weight(
        name='input_bias', shape=bias_shape,
        initializer=uniform(7, *(v / self.gate_bias_scale
                                 for v in self.input_bias_range)))
    self._create_initial_params()
    self.built = True

  def meta_weights(self) -> meta_lstm_cell.MetaLSTMWeights:
    """The gate and LSTM weights as tensors (reads the variables).

    Per-tensor gate biases come out gathered to one value per coordinate,
    [P], so the pure step only sees [] or [P] biases.
    """
    def bias(variable):
      value = tf.convert_to_tensor(variable)
      if self.gate_bias_scale != 1.0:
        value = value * self.gate_bias_scale
      if self.gate_bias == 'per_tensor':
        return tf.gather(value, self._tensor_ids)
      return value

    return meta_lstm_cell.MetaLSTMWeights(
        *(tf.convert_to_tensor(v) for v in (
            self.lstm_kernel, self.lstm_recurrent_kernel, self.lstm_bias,
            self.forget_kernel)),
        bias(self.forget_bias), tf.convert_to_tensor(self.input_kernel),
        bias(self.input_bias))

  def prepare(self, weights: meta_lstm_cell.MetaLSTMWeights
              ) -> meta_lstm_cell.StepWeights:
    return meta_lstm_cell.prepare(weights)

  def initial_state(self, weights: meta_lstm_cell.StepWeights,
                    params: tf.Tensor) -> meta_lstm_cell.MetaLSTMState:
    del weights  # The state's shape is the layer's: [hidden_size, P].
    return meta_lstm_cell.initial_state(params, self.hidden_size)

  def update(self, weights: meta_lstm_cell.StepWeights,
             state: meta_lstm_cell.MetaLSTMState, grad: tf.Tensor,
             loss: tf.Tensor) -> meta_lstm_cell.MetaLSTMState:
    return meta_lstm_cell.meta_lstm_step(weights, state, grad, loss,
                                         self.preprocess_p)

  def call(self, grad, loss, state):
    return self.update(self.prepare(self.meta_weights()),
                       meta_lstm_cell.MetaLSTMState(*state), grad, loss)

  def get_config(self):
    base = super().get_config()
    base.update({
        'hidden_size': self.hidden_size,
        'preprocess_p': self.preprocess_p,
        'weight_init_scale': self.weight_init_scale,
        'forget_bias_range': list(self.forget_bias_range),
        'input_bias_range': list(self.input_bias_range),
        'gate_bias': self.gate_bias,
        'gate_bias_scale': self.gate_bias_scale,
    })
    return base


# The class's first name, for code written against it.
MetaLSTMLayer = MetaLSTMRule
