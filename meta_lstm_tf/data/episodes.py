"""N-way, K-shot episodes sampled from an in-memory `ClassPool`.

An episode draws N distinct classes, then K + Q distinct drawings of each:
the first K are support, the other Q query, so support and query never share
an image. Label j (0..N-1) goes to the j-th drawn class, so which class gets
which label is random per episode; support and query examples are each
shuffled. All randomness is stateless (`tf.random.stateless_*`, Philox):
episode i of a stream with seed s uses the seed `fold_in([s, stream], i)`
only, so

  * the same (seed, index) gives the same episode in any process;
  * resuming training at step t with `start_index = t * meta_batch_size`
    reproduces an uninterrupted run exactly;
  * evaluation episodes are identical for every model given the seed.

Lake et al.'s one-shot protocol (`EpisodeConfig`): `within_alphabet` first
draws one alphabet (uniformly among those with at least N classes), then the
N classes from it; `distinct_drawers` draws K + Q distinct drawers per
episode and takes every class's support drawings from the first K and its
queries from the other Q, so no drawer appears in both. With both options
off, the sampling is exactly the one above.

Pools of uint8 images (photographs) are scaled to float32 [0, 1] after the
gather (`image_ops.to_model_inputs`), so only an episode's images are float.

Shape glossary:
  B: meta-batch size; N: ways; K: shots; Q: queries per class;
  C: classes in the pool; D: drawings per class; H, W: image side;
  ch: channels; G: alphabets with at least N classes.
"""

from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import types
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import image_ops

# Streams keep training and evaluation episodes apart for the same seed.
_TRAIN_STREAM = 0
_EVAL_STREAM = 1
_RNG_ALG = 'philox'  # Fixed so results do not depend on the device.
# Folded into an episode's seed for its augmentation, apart from the four
# seeds that draw it (so augmenting changes the pixels, not the drawings).
_AUGMENT_SEED = 5

Seed = Union[int, Sequence[int], tf.Tensor]


def validate_episode_config(pool: class_pools.ClassPool,
                            episode_config: config_lib.EpisodeConfig,
                            name: str = 'meta_train') -> None:
  """Checks that `pool` can supply the episodes `episode_config` asks for.

  Args:
    pool: the class pool.
    episode_config: N, K, Q.
    name: the pool's name, for the message.

  Raises:
    ValueError: invalid config, N larger than the classes available, or
      K + Q larger than the drawings per class (naming the smallest class
      where classes differ), or a protocol the pool cannot serve.
  """
  episode_config.validate()
  num_classes, num_drawings = pool.images.shape[0], pool.images.shape[1]
  if episode_config.num_ways > num_classes:
    raise ValueError(
        f'{name}: num_ways={episode_config.num_ways} exceeds the '
        f'{num_classes} classes available')
  needed = episode_config.num_shots + episode_config.num_queries
  if needed > num_drawings:
    sizes = getattr(pool, 'class_sizes', None)
    if sizes:
      smallest = int(np.argmin(sizes))
      raise ValueError(
          f'{name}: class {pool.class_names[smallest]!r} has '
          f'{sizes[smallest]} images, fewer than num_shots + num_queries = '
          f'{episode_config.num_shots} + {episode_config.num_queries} = '
          f'{needed}')
    raise ValueError(
        f'{name}: num_shots + num_queries = {episode_config.num_shots} + '
        f'{episode_config.num_queries} = {needed} exceeds the {num_drawings} '
        'drawings per class')
  _protocol(pool, episode_config, name)


class _Protocol(NamedTuple):
  """Pool facts the Lake protocol samples by (None when not used)."""
  class_groups: Optional[np.ndarray]  # int32 [C]: alphabet index
  eligible_groups: Optional[np.ndarray]  # int32 [G]
  drawing_of_drawer: Optional[np.ndarray]  # int32 [C, D]


def _protocol(pool: class_pools.ClassPool,
              episode_config: config_lib.EpisodeConfig, name: str) -> _Protocol:
  """What `episode_config`'s protocol needs from `pool`; ValueError if the
  pool lacks it."""
  groups = eligible = by_drawer = None
  kind = episode_config.episode_classes
  if kind in ('within_alphabet', 'mixed'):
    alphabets = getattr(pool, 'alphabets', None)
    if not alphabets:
      raise ValueError(f'{name}: episode_classes={kind} needs classes '
                       'with alphabets (Omniglot)')
    names = sorted(set(alphabets))
    groups = np.array([names.index(a) for a in alphabets], np.int32)
    counts = np.bincount(groups, minlength=len(names))
    eligible = np.flatnonzero(
        counts >= episode_config.num_ways).astype(np.int32)
    if not eligible.size:
      raise ValueError(
          f'{name}: episode_classes={kind} with num_ways='
          f'{episode_config.num_ways}: no alphabet has that many classes '
          f'(the largest has {counts.max()})')
  if episode_config.distinct_drawers:
    drawers = getattr(pool, 'drawers', None)
    if drawers is None:
      raise ValueError(f'{name}: distinct_drawers needs each drawing\'s '
                       'drawer (Omniglot from a local copy)')
    drawers = np.asarray(drawers)
    # Row c: drawer -> the drawing of class c by that drawer.
    by_drawer = np.argsort(drawers, axis=1).astype(np.int32)
  return _Protocol(groups, eligible, by_drawer)


def _random_order(size, seed) -> tf.Tensor:
  """A stateless random permutation of range(size), int32."""
  scores = tf.random.stateless_uniform([size], seed=seed, alg=_RNG_ALG)
  return tf.math.top_k(scores, k=size, sorted=True).indices


def _choose_classes(num_classes: tf.Tensor,
                    episode_config: config_lib.EpisodeConfig,
                    class_seed: tf.Tensor,
                    protocol: Optional[_Protocol]) -> tf.Tensor:
  """int32 [N]: N distinct classes in random order (of one alphabet for
  `episode_classes='within_alphabet'`; for `mixed`, of one alphabet in half
  of the episodes, by a coin drawn from the seed)."""
  # top_k of i.i.d. uniforms: N distinct classes in random order.
  class_scores = tf.random.stateless_uniform([num_classes], seed=class_seed,
                                             alg=_RNG_ALG)  # [C]
  if episode_config.episode_classes in ('within_alphabet', 'mixed'):
    eligible = tf.constant(protocol.eligible_groups)
    alphabet = tf.gather(eligible, tf.random.stateless_uniform(
        [], seed=tf.random.experimental.stateless_fold_in(
            class_seed, 1, alg=_RNG_ALG),
        maxval=tf.size(eligible), dtype=tf.int32, alg=_RNG_ALG))
    # Scores are in [0, 1): classes of other alphabets, pushed below 0,
    # come after all of the chosen alphabet's (at least N of them).
    in_alphabet = tf.equal(tf.constant(protocol.class_groups), alphabet)
    if episode_config.episode_classes == 'mixed':
      coin_seed = tf.random.experimental.stateless_fold_in(class_seed, 2,
                                                           alg=_RNG_ALG)
      in_alphabet |= tf.random.stateless_uniform(
          [], seed=coin_seed, alg=_RNG_ALG) >= 0.5
    class_scores = tf.where(in_alphabet, class_scores, class_scores - 2.0)
  return tf.math.top_k(class_scores, k=episode_config.num_ways,
                       sorted=True).indices


def _choose_drawings(classes: tf.Tensor, num_drawings: tf.Tensor,
                     episode_config: config_lib.EpisodeConfig,
                     drawing_seed: tf.Tensor,
                     protocol: Optional[_Protocol]) -> tf.Tensor:
  """int32 [N, K + Q]: distinct drawings of each class (by K + Q distinct
  drawers shared by every class for `distinct_drawers`)."""
  needed = episode_config.num_shots + episode_config.num_queries
  if episode_config.distinct_drawers:
    # K + Q distinct drawers shared by every class: support from the first
    # K, queries from the rest.
    drawers = tf.math.top_k(
        tf.random.stateless_uniform([num_drawings], seed=drawing_seed,
                                    alg=_RNG_ALG),
        k=needed, sorted=True).indices  # [K + Q]
    return tf.gather(
        tf.gather(tf.constant(protocol.drawing_of_drawer), classes),
        drawers, axis=1)  # [N, K + Q]
  return tf.math.top_k(
      tf.random.stateless_uniform([episode_config.num_ways, num_drawings],
                                  seed=drawing_seed, alg=_RNG_ALG),
      k=needed, sorted=True).indices  # [N, K + Q]


def sample_episode(pool_images: tf.Tensor,
                   episode_config: config_lib.EpisodeConfig,
                   seed: tf.Tensor,
                   protocol: Optional[_Protocol] = None,
                   augment: Optional[image_ops.AffineRanges] = None
                   ) -> types.Episode:
  """Samples one episode; a pure function of its inputs.

  Args:
    pool_images: float32 [C, D, H, W, ch] or uint8 (scaled to [0, 1]).
    episode_config: N, K, Q (checked against the pool by
      `validate_episode_config`) and the protocol options.
    seed: int32 or int64 [2], the episode's stateless seed.
    protocol: the pool's alphabets and drawers (`_protocol`), needed when
      the options ask for them.
    augment: None, or the ranges in which to rotate, zoom, shift and shear
      every image at random (`image_ops.random_affine`, seeded from `seed`;
      the classes and drawings drawn are the same as without).

  Returns:
    `Episode` with support [N * K, H, W, ch] / [N * K] and query
    [N * Q, H, W, ch] / [N * Q], float32 images, labels int32 in [0, N).
  """
  num_ways = episode_config.num_ways
  num_shots = episode_config.num_shots
  num_queries = episode_config.num_queries
  pool_images = tf.convert_to_tensor(pool_images)
  shape = tf.shape(pool_images)
  num_classes, num_drawings = shape[0], shape[1]
  class_seed, drawing_seed, support_seed, query_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=4, alg=_RNG_ALG))

  classes = _choose_classes(num_classes, episode_config, class_seed, protocol)
  drawings = _choose_drawings(classes, num_drawings, episode_config,
                              drawing_seed, protocol)
  flat_index = classes[:, tf.newaxis] * num_drawings + drawings  # [N, K + Q]
  labels = tf.broadcast_to(tf.range(num_ways, dtype=tf.int32)[:, tf.newaxis],
                           [num_ways, num_shots + num_queries])

  support_order = _random_order(num_ways * num_shots, support_seed)
  query_order = _random_order(num_ways * num_queries, query_seed)
  support_index = tf.gather(tf.reshape(flat_index[:, :num_shots], [-1]),
                            support_order)
  query_index = tf.gather(tf.reshape(flat_index[:, num_shots:], [-1]),
                          query_order)
  support_labels = tf.gather(tf.reshape(labels[:, :num_shots], [-1]),
                             support_order)
  query_labels = tf.gather(tf.reshape(labels[:, num_shots:], [-1]),
                           query_order)

  flat_images = tf.reshape(
      pool_images, tf.concat([[num_classes * num_drawings], shape[2:]], 0))
  # One gather for support and query together.
  images = image_ops.to_model_inputs(
      tf.gather(flat_images, tf.concat([support_index, query_index], 0)))
  if augment is not None:
    images = image_ops.random_affine(
        images, tf.random.experimental.stateless_fold_in(
            seed, _AUGMENT_SEED, alg=_RNG_ALG), augment)
  support_images = images[:num_ways * num_shots]
  query_images = images[num_ways * num_shots:]
  image_shape = pool_images.shape[2:]
  support_images.set_shape([num_ways * num_shots] + image_shape)
  query_images.set_shape([num_ways * num_queries] + image_shape)
  return types.Episode(support_images, support_labels, query_images,
                       query_labels)


def _base_seed(seed: Seed, stream: int) -> tf.Tensor:
  """int64 [2] seed of a stream from an int or a [2] seed."""
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  if seed.shape.rank == 0:
    return tf.stack([seed, tf.constant(stream, tf.int64)])
  if seed.shape != [2]:
    raise ValueError(f'seed={seed!r}: expected an int or a [2] seed')
  return tf.random.experimental.stateless_fold_in(seed, stream, alg=_RNG_ALG)


def episode_seed(seed: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
  """The stateless seed of episode `index` in the stream `seed`."""
  return tf.random.experimental.stateless_fold_in(seed, index, alg=_RNG_ALG)


def _sampler(pool: class_pools.ClassPool,
             episode_config: config_lib.EpisodeConfig, seed: Seed, stream: int):
  """index -> the episode `index` of the stream (seed, stream); only the
  training stream is augmented (`EpisodeConfig.augment`)."""
  images = tf.convert_to_tensor(pool.images)
  base_seed = _base_seed(seed, stream)
  protocol = _protocol(pool, episode_config, 'pool')
  augment = (image_ops.AffineRanges(*episode_config.affine_ranges())
             if episode_config.augment and stream == _TRAIN_STREAM else None)

  def sample(index):
    return sample_episode(images, episode_config,
                          episode_seed(base_seed, index), protocol, augment)

  return sample


def make_episode_dataset(
    pool: class_pools.ClassPool, episode_config: config_lib.EpisodeConfig,
    meta_batch_size: int, seed: Seed, start_index: int = 0,
    num_replicas: int = 1,
    replica_ids: Sequence[int] = (0,)) -> tf.data.Dataset:
  """Infinite meta-batches of training episodes.

  Episode i (counting from 0 over the whole stream) depends only on
  (seed, i); batch b holds episodes b * B .. b * B + B - 1 counted from
  `start_index`.

  Split across R replicas (a `tf.distribute` input pipeline feeding the
  replicas `replica_ids`), element k of the dataset is replica
  r = replica_ids[k % L]'s share of global batch s = k // L (L =
  len(replica_ids)): episodes s * B + r * B / R .. s * B + (r + 1) * B / R - 1
  counted from `start_index`. So the R replicas of step s together see
  exactly the episodes of batch s of the single-device stream, and resuming
  at step t still takes `start_index = t * B`.

  Args:
    pool: meta-train classes.
    episode_config: N, K, Q (its `for_training()` form).
    meta_batch_size: B, episodes per (global) meta-batch.
    seed: int (or int [2]) seed of the stream.
    start_index: index of the first episode, e.g. `step * meta_batch_size`
      when resuming at `step`.
    num_replicas: R, replicas the meta-batch is split across.
    replica_ids: the replicas (in 0..R-1) this dataset feeds, in the order
      the input pipeline hands elements to them.

  Returns:
    `tf.data.Dataset` of `Episode` with a leading [B / R] axis.

  Raises:
    ValueError: the pool cannot supply such episodes, a bad batch size, or
      B not divisible by R.
  """
  episode_config = episode_config.for_training()
  validate_episode_config(pool, episode_config, 'meta_train')
  if (not isinstance(meta_batch_size, int) or isinstance(meta_batch_size, bool)
      or meta_batch_size < 1):
    raise ValueError(f'meta_batch_size={meta_batch_size!r}: must be a '
                     'positive integer')
  if not isinstance(start_index, int) or start_index < 0:
    raise ValueError(f'start_index={start_index!r}: must be a non-negative '
                     'integer')
  if not isinstance(num_replicas, int) or num_replicas < 1:
    raise ValueError(f'num_replicas={num_replicas!r}: must be a positive '
                     'integer')
  if meta_batch_size % num_replicas:
    raise ValueError(f'meta_batch_size={meta_batch_size}: must be a multiple '
                     f'of the {num_replicas} replicas')
  replica_ids = list(replica_ids)
  if not replica_ids or any(not 0 <= r < num_replicas for r in replica_ids):
    raise ValueError(f'replica_ids={replica_ids!r}: must be a non-empty list '
                     f'of replicas in [0, {num_replicas})')
  sample = _sampler(pool, episode_config, seed, _TRAIN_STREAM)
  replica_batch = meta_batch_size // num_replicas
  if num_replicas == 1:
    indices = tf.data.Dataset.counter(start=start_index, dtype=tf.int64)
  else:
    replicas = tf.constant(replica_ids, tf.int64)
    local = len(replica_ids)

    def replica_indices(k):
      first = (start_index + k // local * meta_batch_size +
               tf.gather(replicas, k % local) * replica_batch)
      return tf.range(first, first + replica_batch)

    indices = (tf.data.Dataset.counter(dtype=tf.int64).map(replica_indices)
               .unbatch())
  return (indices
          .map(sample, num_parallel_calls=tf.data.AUTOTUNE,
               deterministic=True)
          .batch(replica_batch, drop_remainder=True,
                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))


def make_eval_dataset(pool: class_pools.ClassPool,
                      episode_config: config_lib.EpisodeConfig,
                      num_episodes: int, seed: Seed,
                      name: str = 'meta_test') -> tf.data.Dataset:
  """A fixed, finite sequence of single evaluation episodes.

  Episode i depends only on (seed, i), so every model evaluated with the same
  seed sees the same episodes, in any process.

  Args:
    pool: meta_valid or meta_test classes.
    episode_config: N, K, Q.
    num_episodes: how many episodes.
    seed: int (or int [2]) seed.
    name: the pool's name, for error messages.

  Returns:
    `tf.data.Dataset` of unbatched `Episode`s.

  Raises:
    ValueError: the pool cannot supply such episodes, or bad num_episodes.
  """
  validate_episode_config(pool, episode_config, name)
  if (not isinstance(num_episodes, int) or isinstance(num_episodes, bool) or
      num_episodes < 1):
    raise ValueError(f'num_episodes={num_episodes!r}: must be a positive '
                     'integer')
  sample = _sampler(pool, episode_config, seed, _EVAL_STREAM)
  return (tf.data.Dataset.range(num_episodes)
          .map(sample, num_parallel_calls=tf.data.AUTOTUNE,
               deterministic=True)
          .prefetch(tf.data.AUTOTUNE))
