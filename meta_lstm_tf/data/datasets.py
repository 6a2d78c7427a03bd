"""Episode datasets for the Python API (`meta_lstm_tf.class_pools`,
`meta_lstm_tf.training_episodes`, `meta_lstm_tf.evaluation_episodes`).

Shapes: B episodes per batch; N ways, K shots, Q queries per class;
H, W, C images.

    pools = meta_lstm_tf.class_pools('omniglot', omniglot_dir=...)
    train = meta_lstm_tf.training_episodes(pools.meta_train, num_ways=5,
                                           num_shots=1, batch_size=4)
    valid = meta_lstm_tf.evaluation_episodes(pools.meta_valid, num_ways=5,
                                             num_shots=1, num_episodes=100)

Every source (TFDS or a local Omniglot copy, mini-ImageNet, a folder of
class folders) returns the same `ClassPools`; the episodes are the CLI's
(`episodes.make_episode_dataset` / `make_eval_dataset`): stateless, a pure
function of (seed, index).
"""

from typing import Optional

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import class_pools as class_pools_lib
from meta_lstm_tf.data import episodes
from meta_lstm_tf.data import pools as pools_lib


def class_pools(dataset: str = 'omniglot', *,
                omniglot_dir: Optional[str] = None,
                data_root: Optional[str] = None, split: str = 'lake',
                split_dir: Optional[str] = None,
                image_size: Optional[int] = None,
                channels: Optional[int] = None, rotations: bool = True,
                data_dir: Optional[str] = None
                ) -> class_pools_lib.ClassPools:
  """The meta-train, meta-valid and meta-test classes of a data set, decoded.

  Args:
    dataset: 'omniglot' (TFDS, or the local copy in `omniglot_dir`),
      'mini_imagenet' or 'image_folder' (`data_root` with train/, val/,
      test/ class folders).
    omniglot_dir, data_root, split, split_dir, rotations, data_dir: as the
      CLI flags of the same names (`config.DataConfig`).
    image_size, channels: default the data set's (Omniglot 28 and 1,
      photographs 84 and 3).

  Returns:
    `ClassPools(meta_train, meta_valid, meta_test)`.

  Raises:
    ValueError: bad arguments; `DataError` (a ValueError) for missing or
      corrupt data.
  """
  photos = dataset != 'omniglot'
  data_config = config_lib.DataConfig(
      dataset=dataset, data_root=data_root, omniglot_dir=omniglot_dir,
      data_dir=data_dir, split=split, split_dir=split_dir,
      rotations=rotations,
      image_size=image_size or (84 if photos else 28),
      channels=channels or (3 if photos else 1))
  return pools_lib.make_class_pools(data_config)


def training_episodes(pool: class_pools_lib.ClassPool, *, num_ways: int = 5,
                      num_shots: int = 1, num_queries: int = 15,
                      batch_size: int = 1, seed: int = 0,
                      augment: bool = False,
                      augment_rotation: Optional[float] = None,
                      augment_zoom: Optional[float] = None,
                      augment_shift: Optional[float] = None,
                      augment_shear: Optional[float] = None,
                      episode_classes: str = 'any',
                      distinct_drawers: bool = False, start_index: int = 0
                      ) -> tf.data.Dataset:
  """An infinite dataset of `types.Episode` batches [B, ...] for
  `MetaLearner.fit` (give `steps_per_epoch`); the options are
  `config.EpisodeConfig`'s (e.g. `episode_classes='within_alphabet'`,
  `distinct_drawers=True` for Lake et al.'s one-shot protocol). An
  augmentation range left at None is `EpisodeConfig`'s default."""
  ranges = dict(augment_rotation=augment_rotation, augment_zoom=augment_zoom,
                augment_shift=augment_shift, augment_shear=augment_shear)
  return episodes.make_episode_dataset(
      pool, config_lib.EpisodeConfig(
          num_ways, num_shots, num_queries, augment=augment,
          episode_classes=episode_classes, distinct_drawers=distinct_drawers,
          **{name: value for name, value in ranges.items()
             if value is not None}),
      batch_size, seed, start_index=start_index)


def evaluation_episodes(pool: class_pools_lib.ClassPool, *,
                        num_ways: int = 5, num_shots: int = 1,
                        num_queries: int = 15, num_episodes: int = 100,
                        batch_size: int = 4, seed: int = 0,
                        episode_classes: str = 'any',
                        distinct_drawers: bool = False
                        ) -> tf.data.Dataset:
  """The same `num_episodes` episodes for every model given `seed`, in
  batches of `batch_size` (the last may be smaller), for `validation_data`,
  `evaluate` and `predict`."""
  return episodes.make_eval_dataset(
      pool, config_lib.EpisodeConfig(num_ways, num_shots, num_queries,
                                     episode_classes=episode_classes,
                                     distinct_drawers=distinct_drawers),
      num_episodes, seed).batch(batch_size)
