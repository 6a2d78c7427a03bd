"""The `sgd` update rule: gradient descent from learned initial parameters.

Shapes: P learner coordinates.

    theta_t = theta_{t-1} - lr * grad_t        (f_t = 1, i_t = lr)

With theta_0 meta-learned this is MAML (Finn et al. 2017); first or second
order is the inner loop's choice (`InnerLoopConfig.second_order`), as for
every rule. The learning rate is fixed, not meta-learned (see `meta_sgd_rule`
for learned rates).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.rules import base


class GatedState(NamedTuple):
  """State of a rule with no state besides the parameters and its gates.

  Attributes:
    forget_gate: [P] f_t (ones for gradient descent).
    input_gate: [P] i_t, the step size of each coordinate.
    params: [P] theta_t.
  """
  forget_gate: tf.Tensor
  input_gate: tf.Tensor
  params: tf.Tensor


def initial_state(params: tf.Tensor) -> GatedState:
  """t = 0: theta_0 = params, gates zero (as the meta-LSTM's f_0, i_0)."""
  zeros = tf.zeros_like(params)
  return GatedState(zeros, zeros, params)


def sgd_step(state: GatedState, grad: tf.Tensor,
             learning_rate: tf.Tensor) -> GatedState:
  """theta_t = theta_{t-1} - learning_rate * grad_t.

  Args:
    state: the state at t - 1.
    grad: [P] gradient of the support loss at theta_{t-1}.
    learning_rate: [] or [P] step size(s).

  Returns:
    The state at t, with f_t = 1 and i_t = learning_rate broadcast to [P].
  """
  learning_rate = tf.cast(learning_rate, grad.dtype)
  params = state.params - learning_rate * grad
  return GatedState(tf.ones_like(params),
                    tf.broadcast_to(learning_rate, tf.shape(params)), params)


class GradientDescentRule(base.UpdateRule):
  """theta_t = theta_{t-1} - meta_weights() * grad_t: `sgd` and `meta_sgd`.

  Subclasses say what the step size is (`meta_weights`, [] or [P]).
  """

  def initial_state(self, weights, params: tf.Tensor) -> GatedState:
    del weights
    return initial_state(params)

  def update(self, weights, state: GatedState, grad: tf.Tensor,
             loss: tf.Tensor) -> GatedState:
    del loss
    return sgd_step(state, grad, weights)


@keras.saving.register_keras_serializable(package='meta_lstm_tf')
class SGDRule(GradientDescentRule):
  """MAML's inner loop: fixed learning rate, learned theta_0.

  The only meta-parameter is `initial_params`; `meta_weights()` is the
  learning rate as a constant tensor.
  """

  def __init__(self, learner=None, learning_rate: float = 0.1,
               seed: int = 0, **kwargs):
    super().__init__(learner, seed=seed, **kwargs)
    if not learning_rate > 0:
      raise ValueError(f'learning_rate={learning_rate!r}: must be > 0')
    self.learning_rate = float(learning_rate)
    self._create_initial_params()
    self.built = True

  @classmethod
  def config_kwargs(cls, meta_config: config_lib.MetaLearnerConfig) -> dict:
    return dict(learning_rate=meta_config.inner_lr)

  def meta_weights(self) -> tf.Tensor:
    return tf.constant(self.learning_rate, self.initial_params.dtype)

  def get_config(self):
    base = super().get_config()
    base['learning_rate'] = self.learning_rate
    return base
