"""`KerasLearner`: any built Keras 3 model as the inner loop's learner.

Shapes: S images [S, H, W, C]; N ways; P trainable coordinates.

The model is never mutated inside the inner loop: every pass is
`model.stateless_call(trainable, non_trainable, images, training=...)` with
the trainable values unflattened from the rule's [P] parameters, so a
`GradientTape` (or two, nested: second order) sees the pass as a pure
function of the parameters. theta_0 starts as the model's weights and is
meta-learned by the rule; the model's own variables are left as they are.

Batch normalisation (every `keras.layers.BatchNormalization`, at any depth)
follows the project's protocol (`learners.base`): in a support pass
(`training=True`) the layer normalises with the batch's statistics and those
are returned for `adapt` to accumulate; with accumulated statistics
(`training=False`) the layer's moving mean and variance are replaced by them.
During the project's passes each layer's momentum is 0 (its "moving"
statistics are then exactly the batch's) and its moments are taken with plain
ops, the variance around the mean without `stop_gradient` (`tf.nn.moments`
stops the gradient there, which makes second derivatives wrong), restored
afterwards.

Other non-trainable weights (frozen layers, Dropout's seed state) are read
as they are and never updated; Dropout is active when `training=True`.
"""

import collections
import contextlib
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import types
from meta_lstm_tf.learners import base


def _layers(model):
  """Every layer of `model`, depth first (nested models included)."""
  seen = []

  def walk(layer):
    for child in getattr(layer, 'layers', None) or getattr(
        layer, '_layers', None) or []:
      if all(child is not s for s in seen):
        seen.append(child)
        walk(child)

  walk(model)
  return seen


def _exact_moments(layer):
  """`layer._moments` with the variance's gradient through the mean."""
  original = layer._moments  # pylint: disable=protected-access

  def moments(inputs, mask):
    if mask is not None:
      return original(inputs, mask)
    axes = list(layer._reduction_axes)  # pylint: disable=protected-access
    mean = tf.reduce_mean(inputs, axis=axes)
    variance = tf.reduce_mean(
        tf.square(inputs - tf.reduce_mean(inputs, axis=axes, keepdims=True)),
        axis=axes)
    return mean, variance

  return moments


class KerasLearner(base.Learner):
  """A built Keras model [S, H, W, C] -> logits [S, N] as the learner.

  Args:
    model: a built Keras 3 model (Sequential, functional or subclassed;
      TensorFlow backend) mapping [S, H, W, C] images to [S, N] logits.
      P is its trainable coordinate count.
    input_shape: (H, W, C), needed only where the model does not know it
      (a subclassed model built by calling it).

  Raises:
    ValueError: an unbuilt model, no trainable weights, a non-square input,
      an output that is not [S, N], or a BatchNormalization layer that
      normalises another axis than the last.
  """

  def __init__(self, model: keras.Model,
               input_shape: Optional[Sequence[int]] = None):
    if not isinstance(model, keras.Model):
      raise TypeError(f'expected a keras.Model, got {type(model).__name__}')
    if not model.built:
      raise ValueError(
          f'model {model.name!r} is not built: give it an input shape '
          '(keras.Input, or call it once on a batch of images) first')
    if input_shape is None:
      try:
        input_shape = tuple(model.input_shape)[1:]
      except (AttributeError, ValueError) as error:
        raise ValueError(
            f'model {model.name!r}: its input shape is unknown; pass '
            'input_shape=(H, W, C)') from error
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or input_shape[0] != input_shape[1]:
      raise ValueError(f'model {model.name!r}: input shape {input_shape}; '
                       'expected square images (H, H, C)')
    self.model = model
    self.image_size, self.channels = input_shape[0], input_shape[2]
    self._trainable = list(model.trainable_variables)
    if not self._trainable:
      raise ValueError(f'model {model.name!r} has no trainable weights')
    self._non_trainable = list(model.non_trainable_variables)
    spec = collections.OrderedDict()
    for variable in self._trainable:
      name = variable.path
      while name in spec:
        name += '_'
      spec[name] = tuple(int(d) for d in variable.shape)
    self.param_spec = spec
    self.num_coordinates = int(sum(np.prod(s) for s in spec.values()))
    self._batch_norms = [layer for layer in _layers(model)
                         if isinstance(layer,
                                       keras.layers.BatchNormalization)
                         and layer.trainable]
    self._bn_slots = []
    for layer in self._batch_norms:
      if layer.axis not in (-1, len(input_shape)):
        raise ValueError(f'{layer.name}: BatchNormalization over axis '
                         f'{layer.axis}; only the last (channels) is '
                         'supported')
      if layer.renorm:
        raise ValueError(f'{layer.name}: renorm is not supported')
      self._bn_slots.append((self._index(layer.moving_mean),
                             self._index(layer.moving_variance)))
    logits = self.apply(tf.convert_to_tensor(self.initial_params()),
                        tf.zeros((1,) + input_shape,
                                 self._trainable[0].dtype))[0]
    if logits.shape.rank != 2:
      raise ValueError(f'model {model.name!r} outputs shape {logits.shape}; '
                       'expected logits [S, N]')
    self.num_ways = int(logits.shape[-1])

  def _index(self, variable) -> int:
    for i, candidate in enumerate(self._non_trainable):
      if candidate is variable:
        return i
    raise ValueError(f'{variable.path}: not among the model\'s '
                     'non-trainable weights')

  @property
  def variables(self) -> list:
    return list(self.model.variables)

  def initial_params(self, seed: int = 0) -> np.ndarray:
    """The model's current trainable weights, flat (`seed` is unused)."""
    del seed
    return np.concatenate([np.reshape(keras.ops.convert_to_numpy(v), [-1])
                           for v in self._trainable]).astype(
                               keras.backend.standardize_dtype(
                                   self._trainable[0].dtype))

  def init_stats(self, dtype=tf.float32) -> types.BatchNormStats:
    shapes = [tuple(layer.moving_mean.shape) for layer in self._batch_norms]
    return types.BatchNormStats(tuple(tf.zeros(s, dtype) for s in shapes),
                                tuple(tf.ones(s, dtype) for s in shapes),
                                tf.constant(0.0, dtype))

  @contextlib.contextmanager
  def _episode_batch_norm(self):
    saved = [(layer, layer.momentum, layer.__dict__.get('_moments'))
             for layer in self._batch_norms]
    try:
      for layer in self._batch_norms:
        layer.momentum = 0.0
        layer._moments = _exact_moments(layer)  # pylint: disable=protected-access
      yield
    finally:
      for layer, momentum, moments in saved:
        layer.momentum = momentum
        if moments is None:
          del layer._moments  # pylint: disable=protected-access
        else:
          layer._moments = moments  # pylint: disable=protected-access

  def apply(self, params: tf.Tensor, images: tf.Tensor, *,
            stats: Optional[types.BatchNormStats] = None,
            twice_differentiable: bool = True, aux=None, conv_dtype=None):
    del twice_differentiable, aux, conv_dtype  # Always exact; no hint used.
    trainable = self.unflatten(params)
    non_trainable = [tf.convert_to_tensor(v.value) for v in
                     self._non_trainable]
    training = stats is None
    if not training:
      for k, (mean_slot, variance_slot) in enumerate(self._bn_slots):
        non_trainable[mean_slot] = stats.means[k]
        non_trainable[variance_slot] = stats.variances[k]
    with self._episode_batch_norm():
      logits, updated = self.model.stateless_call(
          trainable, non_trainable, images, training=training)
    if training:
      means = tuple(updated[m] for m, _ in self._bn_slots)
      variances = tuple(updated[v] for _, v in self._bn_slots)
    else:
      means, variances = tuple(stats.means), tuple(stats.variances)
    return logits, types.BatchNormStats(means, variances,
                                        tf.constant(1.0, params.dtype))

  def get_config(self) -> dict:
    return {'model': keras.saving.serialize_keras_object(self.model),
            'input_shape': [self.image_size, self.image_size, self.channels]}

  @classmethod
  def from_config(cls, config: dict) -> 'KerasLearner':
    model = keras.saving.deserialize_keras_object(config['model'])
    if not model.built:
      model.build((None,) + tuple(config['input_shape']))
    return cls(model, input_shape=config['input_shape'])


def conv_net(config=None, seed: int = 0, **fields) -> keras.Sequential:
  """The built-in learner's architecture as a Keras model, with the
  built-in initial weights: num_blocks x [Conv2D 3x3 'same' -> BatchNorm ->
  ReLU -> MaxPool 2x2] -> Flatten -> Dense(num_ways).

  Args:
    config: a `LearnerConfig`, or None to build one from `fields`
      (num_ways, num_filters, num_blocks, image_size, channels).
    seed: `conv_ops.init_params`'s seed.
  """
  from meta_lstm_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from meta_lstm_tf.learners import conv_ops as learner_lib  # pylint: disable=g-import-not-at-top
  config = (config or config_lib.LearnerConfig(**fields)).validate()
  layers = [keras.Input((config.image_size, config.image_size,
                         config.channels))]
  for _ in range(config.num_blocks):
    layers += [keras.layers.Conv2D(config.num_filters, 3, padding='same'),
               keras.layers.BatchNormalization(epsilon=config.bn_epsilon),
               keras.layers.ReLU(), keras.layers.MaxPooling2D(2)]
  layers += [keras.layers.Flatten(), keras.layers.Dense(config.num_ways)]
  model = keras.Sequential(layers)
  for variable, value in zip(model.trainable_variables,
                             learner_lib.init_params(config, seed).values()):
    variable.assign(value)
  return model
