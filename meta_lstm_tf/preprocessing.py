"""Gradient and loss preprocessing of Andrychowicz et al. (2016), Appendix A.

Each scalar x is mapped to two features:

    (log|x| / p, sign(x))   if |x| >= exp(-p)
    (-1, exp(p) * x)        otherwise

so that inputs spanning many orders of magnitude reach the meta-LSTM in a
well-scaled form. Pure function; works on any shape, appending a last axis of 2.
"""

import math

import tensorflow as tf


def preprocess(x: tf.Tensor, p: float = 10.0) -> tf.Tensor:
  """Maps x [...] to float [..., 2] as in the module docstring.

  Args:
    x: float tensor of any shape.
    p: the scale p > 0 (paper: 10).

  Returns:
    Tensor of shape x.shape + [2].
  """
  x = tf.convert_to_tensor(x)
  threshold = math.exp(-p)
  abs_x = tf.abs(x)
  big = abs_x >= threshold
  # Keep log away from 0 on the branch that is not selected, so its gradient
  # is finite and tf.where does not leak NaNs into second derivatives.
  safe_abs = tf.where(big, abs_x, tf.ones_like(abs_x))
  first = tf.where(big, tf.math.log(safe_abs) / p, -tf.ones_like(x))
  second = tf.where(big, tf.sign(x), math.exp(p) * x)
  return tf.stack([first, second], axis=-1)
