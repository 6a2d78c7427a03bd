"""`ConvLearner`: the built-in conv learner behind the `Learner` interface.

Its maths and its fast first-order path (the first conv over per-episode
patches, fused batch norm, bfloat16 convolutions) are `meta_lstm_tf.learners.conv_ops`'s
functions; this class only binds them to a `LearnerConfig`.
"""

from typing import Optional

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf import types
from meta_lstm_tf.learners import base


class ConvLearner(base.Learner):
  """num_blocks x [conv3x3 -> BN -> ReLU -> maxpool2x2] -> linear."""

  def __init__(self, config: config_lib.LearnerConfig):
    if not isinstance(config, config_lib.LearnerConfig):
      config = config_lib.LearnerConfig(**dict(config))
    self.config = config.validate()
    self.param_spec = learner.param_spec(self.config)
    self.num_coordinates = learner.num_params(self.config)
    self.num_ways = self.config.num_ways
    self.image_size = self.config.image_size
    self.channels = self.config.channels

  def initial_params(self, seed: int = 0):
    return learner.flatten(learner.init_params(self.config, seed),
                           self.param_spec).numpy()

  def init_stats(self, dtype=tf.float32) -> types.BatchNormStats:
    return learner.init_bn_stats(self.config, dtype)

  def prepare(self, images: tf.Tensor, differentiated: bool = True):
    # The first conv as a product over patches: cheaper whenever its kernel
    # gradient is taken; forward only, the plain conv is cheaper.
    return learner.first_block_patches(images) if differentiated else None

  def apply(self, params: tf.Tensor, images: tf.Tensor, *,
            stats: Optional[types.BatchNormStats] = None,
            twice_differentiable: bool = True, aux=None, conv_dtype=None):
    return learner.apply(learner.unflatten(params, self.param_spec), images,
                         self.config, bn_stats=stats,
                         twice_differentiable=twice_differentiable,
                         patches=aux, conv_dtype=conv_dtype)

  def head_features(self, params: tf.Tensor, images: tf.Tensor, *,
                    aux=None, conv_dtype=None) -> tf.Tensor:
    feature_batch, _ = learner.features(
        learner.unflatten(params, self.param_spec), images, self.config,
        twice_differentiable=False, patches=aux, conv_dtype=conv_dtype)
    return feature_batch

  def get_config(self) -> dict:
    return dict(self.config.__dict__)

  def __eq__(self, other):
    return isinstance(other, ConvLearner) and other.config == self.config

  def __hash__(self):
    return hash(self.config)
