"""Synthetic configs and class pools shared by the baselines' tests."""

import tempfile

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf.data import class_pools

SIZE = 8

LEARNER = config_lib.LearnerConfig(num_ways=3, num_filters=4, num_blocks=2,
                                   image_size=SIZE)


def config(test_episodes: int = 8, num_ways: int = 3,
           num_queries: int = 4) -> config_lib.ExperimentConfig:
  return config_lib.ExperimentConfig(
      data=config_lib.DataConfig(image_size=SIZE),
      episode=config_lib.EpisodeConfig(num_ways=num_ways, num_shots=1,
                                       num_queries=num_queries),
      learner=config_lib.LearnerConfig(num_ways=num_ways, num_filters=4,
                                       num_blocks=2, image_size=SIZE),
      train=config_lib.TrainConfig(test_episodes=test_episodes))


def separable_pool(num_classes: int, num_drawings: int, seed: int,
                   noise: float = 0.1,
                   size: int = SIZE) -> class_pools.ClassPool:
  """Each class: a random binary pattern plus a little noise per drawing."""
  rng = np.random.default_rng(seed)
  prototypes = (rng.random((num_classes, 1, size, size, 1)) < 0.5)
  images = np.clip(
      prototypes +
      noise * rng.normal(size=(num_classes, num_drawings, size, size, 1)), 0.0,
      1.0)
  return class_pools.ClassPool(
      images=tf.constant(images.astype(np.float32)),
      class_names=tuple(f'Synthetic/character{i + 1:02d}'
                        for i in range(num_classes)))


def constant_pool(num_classes: int, num_drawings: int,
                  value: float) -> class_pools.ClassPool:
  return class_pools.ClassPool(
      images=tf.fill([num_classes, num_drawings, SIZE, SIZE, 1], value),
      class_names=tuple(f'Constant/character{i + 1:02d}'
                        for i in range(num_classes)))


def separable_pools() -> class_pools.ClassPools:
  return class_pools.ClassPools(meta_train=separable_pool(8, 10, seed=0),
                           meta_valid=separable_pool(6, 10, seed=1),
                           meta_test=separable_pool(6, 10, seed=2))


def init_feature_params(learner_config=LEARNER, seed: int = 0) -> tf.Tensor:
  return learner.flatten(learner.init_params(learner_config, seed),
                         learner.feature_spec(learner_config))


def new_dir(test: tf.test.TestCase) -> str:
  return tempfile.mkdtemp(dir=test.get_temp_dir())


def cosine_nn_reference(support, labels, query):
  support = support / np.maximum(
      np.linalg.norm(support, axis=-1, keepdims=True), 1e-6)
  query = query / np.maximum(np.linalg.norm(query, axis=-1, keepdims=True),
                             1e-6)
  return labels[np.argmax(query @ support.T, axis=-1)]
