"""Pure step functions of the coordinate-wise meta-learner LSTM.

Shapes: P learner coordinates (the batch axis of the meta-LSTM), D hidden units
of the first layer (20 by default).

Layer 1 is a standard LSTM (Hochreiter & Schmidhuber) whose input per
coordinate is [preprocess(grad), preprocess(loss)] (4 features):

    [a_i, a_f, a_g, a_o] = x_t W_x + h_{t-1} W_h + b
    c1_t = sigmoid(a_f) * c1_{t-1} + sigmoid(a_i) * tanh(a_g)
    h_t  = sigmoid(a_o) * tanh(c1_t)

Layer 2 holds the learner's parameters theta as its cell state: Ravi &
Larochelle's update (eq. 2) with gates shaped as their eqs. 3-4, but over the
inputs the original code gives them: layer 1's output h_t where the paper
writes the (preprocessed) gradient and loss, then theta_{t-1} and the
previous gate:

    f_t     = sigmoid([h_t, theta_{t-1}, f_{t-1}] . W_F + b_F)
    i_t     = sigmoid([h_t, theta_{t-1}, i_{t-1}] . W_I + b_I)
    theta_t = f_t * theta_{t-1} - i_t * grad_t

The previous gates fed back are the gate *values* (after the sigmoid), as in
the paper's equations (the original Lua code feeds back pre-activations), and
the initial gates are f_0 = i_0 = 0. `tests/rules/test_meta_lstm_cell.py`
pins this choice against a NumPy reference. With f_t = 1 and i_t = lr the
update is plain gradient descent.
"""

from typing import NamedTuple

import tensorflow as tf

from meta_lstm_tf.rules import preprocessing


class MetaLSTMWeights(NamedTuple):
  """Meta-parameters of both layers.

  Attributes:
    lstm_kernel: [4, 4 * D] input weights of layer 1 (gate order i, f, g, o).
    lstm_recurrent_kernel: [D, 4 * D].
    lstm_bias: [4 * D].
    forget_kernel: [D + 2] weights of W_F over [h, theta, f_prev].
    forget_bias: [] b_F, or [P] (one bias per coordinate).
    input_kernel: [D + 2] weights of W_I over [h, theta, i_prev].
    input_bias: [] b_I, or [P].
  """
  lstm_kernel: tf.Tensor
  lstm_recurrent_kernel: tf.Tensor
  lstm_bias: tf.Tensor
  forget_kernel: tf.Tensor
  forget_bias: tf.Tensor
  input_kernel: tf.Tensor
  input_bias: tf.Tensor


class MetaLSTMState(NamedTuple):
  """Recurrent state: layer 1's [D, P], layer 2's [P] (coordinates last).

  Attributes:
    lstm_h: [D, P] layer-1 hidden state (coordinates on the last axis).
    lstm_c: [D, P] layer-1 cell state.
    forget_gate: [P] f_{t-1}.
    input_gate: [P] i_{t-1}.
    params: [P] theta_{t-1}, the learner's flat parameters.
  """
  lstm_h: tf.Tensor
  lstm_c: tf.Tensor
  forget_gate: tf.Tensor
  input_gate: tf.Tensor
  params: tf.Tensor


def initial_state(params: tf.Tensor, hidden_size: int) -> MetaLSTMState:
  """The state at t = 0: zero LSTM state and gates, theta_0 = params."""
  num = tf.shape(params)[0]
  zeros_h = tf.zeros(tf.stack([hidden_size, num]), dtype=params.dtype)
  zeros_p = tf.zeros_like(params)
  return MetaLSTMState(zeros_h, zeros_h, zeros_p, zeros_p, params)


class StepWeights(NamedTuple):
  """`MetaLSTMWeights` rearranged for the step's products (`prepare`).

  Made once per episode, outside the inner loop, so that no slice, concat or
  transpose of a weight runs (forward and backward) at every inner step.

  Attributes:
    gate_kernels: 4 tensors [D, 2 + D] (gates i, f, g, o): the gate's columns
      of [lstm_kernel[:2]; lstm_recurrent_kernel], transposed.
    loss_kernel: [4D, 2], lstm_kernel[2:] transposed (the loss features'
      weights, folded into the bias at each step).
    lstm_bias: [4D, 1].
    hidden_kernel: [2, D]: the h weights of W_F (row 0) and W_I (row 1).
    param_kernel: [2, 1]: their theta weights.
    prev_gate_kernel: [2, 1]: their previous-gate weights.
    gate_bias: [2, 1] (shared biases) or [2, P].
  """
  gate_kernels: tuple
  loss_kernel: tf.Tensor
  lstm_bias: tf.Tensor
  hidden_kernel: tf.Tensor
  param_kernel: tf.Tensor
  prev_gate_kernel: tf.Tensor
  gate_bias: tf.Tensor


def prepare(weights: MetaLSTMWeights) -> StepWeights:
  """Rearranges the weights for `meta_lstm_step` (differentiable)."""
  hidden = weights.lstm_recurrent_kernel.shape[0]
  kernel = tf.concat([weights.lstm_kernel[:2], weights.lstm_recurrent_kernel],
                     axis=0)  # [2 + D, 4D]
  gate_kernels = tuple(tf.transpose(k) for k in tf.split(kernel, 4, axis=1))
  layer2 = tf.stack([weights.forget_kernel, weights.input_kernel])  # [2, D+2]
  gate_bias = tf.stack([weights.forget_bias, weights.input_bias])
  if gate_bias.shape.rank == 1:
    gate_bias = gate_bias[:, None]
  return StepWeights(
      gate_kernels=gate_kernels,
      loss_kernel=tf.transpose(weights.lstm_kernel[2:]),
      lstm_bias=weights.lstm_bias[:, None],
      hidden_kernel=layer2[:, :hidden],
      param_kernel=layer2[:, hidden:hidden + 1],
      prev_gate_kernel=layer2[:, hidden + 1:],
      gate_bias=gate_bias)


def lstm_step(weights: StepWeights, grad_features: tf.Tensor,
              loss_features: tf.Tensor, h: tf.Tensor, c: tf.Tensor):
  """Layer 1: one standard LSTM step. Returns (h_t, c_t), each [D, P].

  Coordinates run along the last (contiguous) axis and each gate has its own
  [D, 2 + D] x [2 + D, P] product: no [P, 4D] tensor is split column-wise
  (a slow strided copy, forward and backward), and the four products are
  independent ops that the runtime runs side by side. The input
  x_t = [grad_features [2, P], loss_features [2]] is never materialised: the
  loss is the same for every coordinate, so its input weights fold into the
  bias.
  """
  bias = tf.matmul(weights.loss_kernel, loss_features[:, None]) + (
      weights.lstm_bias)  # [4D, 1]
  inputs = tf.concat([grad_features, h], axis=0)  # [2 + D, P]
  a_i, a_f, a_g, a_o = (
      tf.matmul(k, inputs) + b
      for k, b in zip(weights.gate_kernels, tf.split(bias, 4)))
  c_new = tf.sigmoid(a_f) * c + tf.sigmoid(a_i) * tf.tanh(a_g)
  h_new = tf.sigmoid(a_o) * tf.tanh(c_new)
  return h_new, c_new


def gates(weights: StepWeights, h: tf.Tensor, params: tf.Tensor,
          prev_forget: tf.Tensor, prev_input: tf.Tensor):
  """Layer 2 gates f_t, i_t (each [P]) from [h_t, theta_{t-1}, gate_{t-1}].

  h is [D, P]. Both gates are computed as the rows of one [2, P] tensor.
  """
  logits = (tf.matmul(weights.hidden_kernel, h) +
            weights.param_kernel * params +
            weights.prev_gate_kernel * tf.stack([prev_forget, prev_input]) +
            weights.gate_bias)  # [2, P]
  forget_gate, input_gate = tf.unstack(tf.sigmoid(logits))
  return forget_gate, input_gate


def meta_lstm_step(weights: StepWeights, state: MetaLSTMState,
                   grad: tf.Tensor, loss: tf.Tensor,
                   preprocess_p: float = 10.0) -> MetaLSTMState:
  """One update of the learner's parameters by the meta-LSTM.

  Args:
    weights: the meta-parameters, as `prepare` arranges them (once per
      episode, outside the inner loop).
    state: the state at t - 1 (its `params` is theta_{t-1}).
    grad: [P] gradient of the support loss at theta_{t-1}.
    loss: [] support loss at theta_{t-1}.
    preprocess_p: the preprocessing scale p.

  Returns:
    The state at t; `params` is theta_t.
  """
  loss = tf.cast(loss, grad.dtype)
  grad_features = preprocessing.preprocess(grad, preprocess_p,
                                           axis=0)  # [2, P]
  loss_features = preprocessing.preprocess(loss, preprocess_p)  # [2]
  h, c = lstm_step(weights, grad_features, loss_features, state.lstm_h,
                   state.lstm_c)
  forget_gate, input_gate = gates(weights, h, state.params, state.forget_gate,
                                  state.input_gate)
  params = forget_gate * state.params - input_gate * grad
  return MetaLSTMState(h, c, forget_gate, input_gate, params)
