"""The pretraining's data: pool checks, batches and the loss sample.

Shapes: C meta-train classes, D drawings per class, B pretraining batch size.
"""

from typing import Tuple

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import image_ops

# Images of the fixed sample the pretraining loss is reported on.
_LOSS_SAMPLE = 1024
_RNG_ALG = 'philox'
# Keeps the pretraining batches apart from any other stream of the same seed.
_PRETRAIN_STREAM = 2
_LOSS_SAMPLE_STREAM = 3


def check_pool(pool, learner_config: config_lib.LearnerConfig,
                name: str) -> Tuple[int, int]:
  """(C, D) of a pool whose images fit the learner; else ValueError."""
  images = getattr(pool, 'images', None)
  if images is None:
    raise ValueError(f'pools.{name} has no `images` (expected a '
                     'class_pools.ClassPool)')
  shape = tuple(images.shape)
  expected = (learner_config.image_size, learner_config.image_size,
              learner_config.channels)
  if len(shape) != 5 or shape[2:] != expected:
    raise ValueError(f'pools.{name}.images has shape {shape}; expected '
                     f'[C, D, {expected[0]}, {expected[1]}, {expected[2]}] '
                     'to match the learner config')
  return int(shape[0]), int(shape[1])


def check_pools(pools) -> None:
  for name in ('meta_train', 'meta_valid', 'meta_test'):
    if not hasattr(pools, name):
      raise ValueError(f'pools has no {name!r} (expected '
                       f'class_pools.ClassPools, got {type(pools).__name__})')


def make_pretrain_dataset(pool_images, batch_size: int, seed: int,
                          start_step: int = 0) -> tf.data.Dataset:
  """Infinite mini-batches of (image, class) pairs from a class pool.

  Batch i holds B pairs drawn uniformly (with replacement) from the C * D
  images, with the stateless seed fold_in([seed, stream], i): it depends on
  (seed, i) only, so a resumed pretraining sees the batches an uninterrupted
  one would.

  Args:
    pool_images: float32 [C, D, H, W, ch], or uint8 (scaled to [0, 1]
      after the gather).
    batch_size: B.
    seed: the stream's seed.
    start_step: index of the first batch.

  Returns:
    `tf.data.Dataset` of (images [B, H, W, ch], labels int32 [B] in [0, C)).
  """
  images = _pool_tensor(pool_images)
  num_classes, num_drawings = int(images.shape[0]), int(images.shape[1])
  flat = tf.reshape(images, [num_classes * num_drawings] + images.shape[2:])
  base_seed = tf.constant([seed, _PRETRAIN_STREAM], tf.int64)

  def batch(step):
    index = tf.random.stateless_uniform(
        [batch_size],
        seed=tf.random.experimental.stateless_fold_in(base_seed, step,
                                                      alg=_RNG_ALG),
        minval=0, maxval=num_classes * num_drawings, dtype=tf.int64,
        alg=_RNG_ALG)
    return (image_ops.to_model_inputs(tf.gather(flat, index)),
            tf.cast(index // num_drawings, tf.int32))

  return (tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
          .map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))


def loss_sample(pool_images, seed: int):
  """A fixed sample of (images, labels) the pretraining loss is reported on."""
  images = _pool_tensor(pool_images)
  num_classes, num_drawings = int(images.shape[0]), int(images.shape[1])
  total = num_classes * num_drawings
  size = min(_LOSS_SAMPLE, total)
  scores = tf.random.stateless_uniform(
      [total], seed=tf.constant([seed, _LOSS_SAMPLE_STREAM], tf.int64),
      alg=_RNG_ALG)
  index = tf.math.top_k(scores, k=size).indices
  flat = tf.reshape(images, [total] + images.shape[2:])
  return (image_ops.to_model_inputs(tf.gather(flat, index)),
          tf.cast(index // num_drawings, tf.int32))


def _pool_tensor(pool_images) -> tf.Tensor:
  """The pool as a tensor: uint8 pools stay uint8 (a float copy of
  mini-ImageNet would take 5 GB), anything else becomes float32."""
  images = tf.convert_to_tensor(pool_images)
  return images if images.dtype == tf.uint8 else tf.cast(images, tf.float32)
