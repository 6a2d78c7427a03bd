"""Gradient and loss preprocessing of Andrychowicz et al. (2016), Appendix A.

Each scalar x is mapped to two features:

    (log|x| / p, sign(x))   if |x| >= exp(-p)
    (-1, exp(p) * x)        otherwise

so that inputs spanning many orders of magnitude reach the meta-LSTM in a
well-scaled form. Pure function; works on any shape, appending a last axis of 2.
"""

import math

import tensorflow as tf


def preprocess(x: tf.Tensor, p: float = 10.0, axis: int = -1) -> tf.Tensor:
  """Maps x [...] to float [..., 2] as in the module docstring.

  Args:
    x: float tensor of any shape.
    p: the scale p > 0 (paper: 10).
    axis: where the new axis of 2 features goes (0: [2, ...]).

  Returns:
    Tensor of shape x.shape + [2] (the 2 at `axis`).
  """
  x = tf.convert_to_tensor(x)
  threshold = math.exp(-p)
  abs_x = tf.abs(x)
  big = abs_x >= threshold
  # log of max(|x|, e^-p) equals log|x| where it is selected and stays finite
  # (with a finite gradient) where it is not, so tf.where does not leak NaNs
  # into first or second derivatives.
  first = tf.where(big, tf.math.log(tf.maximum(abs_x, threshold)) * (1.0 / p),
                   -tf.ones_like(x))
  second = tf.where(big, tf.sign(x), math.exp(p) * x)
  return tf.stack([first, second], axis=axis)
