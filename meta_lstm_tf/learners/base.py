"""The interface between the inner loop and a learner.

Shapes: S images [S, H, W, C]; N ways; P coordinates.

`inner_loop.adapt` sees a learner only through `Learner`: the flat layout of
its P trainable coordinates (`param_spec`, in flat order), theta_0's default
value, fresh per-episode batch-norm statistics, and one pure forward pass

    logits, batch_stats = learner.apply(params [P], images, stats=...)

that never mutates anything. Two implementations:

    conv.py         `ConvLearner`, the built-in four-block conv net
                    (`meta_lstm_tf.learners.conv_ops`'s functions, with its fast
                    first-order path)
    keras_model.py  `KerasLearner`, any built Keras 3 model, through
                    `stateless_call`

Batch-norm protocol (every learner): statistics are reset at the start of
every episode (`init_stats`), each support pass normalises with its own batch
and reports its statistics (`apply(..., stats=None)`), `adapt` accumulates
them over the support passes, and the queries are normalised with the
accumulated support statistics (`apply(..., stats=accumulated)`) unless
evaluation is transductive.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from meta_lstm_tf import types


class Learner:
  """What the inner loop needs of a learner. Subclasses set the attributes
  and implement `initial_params`, `init_stats` and `apply`.

  Attributes:
    param_spec: ordered mapping name -> shape of the trainable tensors, in
      the order of the flat [P] vector (the meta-LSTM's `per_tensor` gate
      biases are one per entry).
    num_coordinates: P.
    num_ways: N, the logits per image.
    image_size: the input side (inputs are [S, image_size, image_size,
      channels]).
    channels: input channels.
  """
  param_spec: dict
  num_coordinates: int
  num_ways: int
  image_size: int
  channels: int

  def initial_params(self, seed: int = 0) -> np.ndarray:
    """float32 [P], theta_0's starting value."""
    raise NotImplementedError

  def init_stats(self, dtype=tf.float32) -> types.BatchNormStats:
    """Fresh per-episode batch-norm statistics (mean 0, variance 1, count 0)."""
    raise NotImplementedError

  def prepare(self, images: tf.Tensor, differentiated: bool = True):
    """Per-episode work on `images` shared by its passes (handed back to
    `apply` as `aux`). Default: none."""
    del images, differentiated
    return None

  def apply(self, params: tf.Tensor, images: tf.Tensor, *,
            stats: Optional[types.BatchNormStats] = None,
            twice_differentiable: bool = True, aux=None, conv_dtype=None):
    """One pure forward pass.

    Args:
      params: [P] flat parameters.
      images: [S, H, W, C].
      stats: None: batch norm on the batch's own statistics (support passes,
        meta-training queries, transductive evaluation); else the episode's
        accumulated statistics to normalise with.
      twice_differentiable: whether second derivatives through this pass
        must be exact.
      aux: `prepare(images)`'s output, or None.
      conv_dtype: a precision hint for first-order passes (learners may
        ignore it).

    Returns:
      (logits [S, N], this pass's batch statistics with count 1).
    """
    raise NotImplementedError

  def head_features(self, params: tf.Tensor, images: tf.Tensor, *,
                    aux=None, conv_dtype=None) -> tf.Tensor:
    """Features [S, F] entering a linear head, normalised with the batch's
    own statistics, for learners whose last two `param_spec` entries are
    that head's kernel [F, N] and bias [N] (what `head_init='prototypes'`
    sets); once differentiable. Learners without one raise
    NotImplementedError (the default)."""
    del params, images, aux, conv_dtype
    raise NotImplementedError(
        f'{type(self).__name__} exposes no linear head '
        "(head_init='prototypes' needs the built-in conv learner)")

  @property
  def variables(self) -> list:
    """Variables the forward pass reads besides `params` (a Keras model's
    non-trainable weights); a SavedModel must track them."""
    return []

  def flatten(self, nest) -> tf.Tensor:
    """A {name: tensor} nest (or a list in `param_spec` order) -> [P]."""
    if isinstance(nest, dict):
      nest = [nest[name] for name in self.param_spec]
    return tf.concat([tf.reshape(t, [-1]) for t in nest], axis=0)

  def unflatten(self, flat: tf.Tensor) -> list:
    """[P] -> tensors in `param_spec` order, with their shapes."""
    sizes = [int(np.prod(shape)) for shape in self.param_spec.values()]
    return [tf.reshape(piece, shape) for piece, shape in
            zip(tf.split(flat, sizes, axis=0), self.param_spec.values())]

  def get_config(self) -> dict:
    raise NotImplementedError
