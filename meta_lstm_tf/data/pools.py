"""The data package's front door: the meta-split class pools of any data set.

`make_class_pools(data_config)` dispatches on `DataConfig.dataset` to the
source that decodes it:

  omniglot       `omniglot.splits` (TFDS `omniglot` or a local copy; the
                 lake / minimal / vinyals protocols of `DataConfig.split`)
  mini_imagenet  `photos.mini_imagenet` (a local copy in `data_root`)
  image_folder   `photos.image_folder` (`data_root/{train,val,test}/CLASS/*`)

Each returns `class_pools.ClassPools`, whose classes are disjoint between
meta-splits; episodes (`episodes`) are then sampled from the decoded tensors.
`make_episode_pools` adds what an episode protocol needs (Omniglot's drawers)
and `load_pools` checks every pool against the episodes an experiment asks
for.

Shape glossary: C classes in a pool; D images per class; H = W =
`DataConfig.image_size`; ch = `DataConfig.channels`.
"""

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import episodes
from meta_lstm_tf.data.omniglot import splits as omniglot_splits
from meta_lstm_tf.data.photos import image_folder
from meta_lstm_tf.data.photos import mini_imagenet

META_SPLITS = ('meta_train', 'meta_valid', 'meta_test')


def make_class_pools(data_config: config_lib.DataConfig,
                     drawers: bool = False) -> class_pools.ClassPools:
  """Decodes the data set once and splits its classes into meta-split pools.

  Args:
    data_config: `config.DataConfig`. Omniglot: `omniglot_dir=None` loads
      TFDS `omniglot` (downloading it if needed), otherwise the local copy;
      `mini_imagenet` and `image_folder` read `data_root`.
    drawers: also find each Omniglot drawing's drawer
      (`class_pools.ClassPool.drawers`, for
      `EpisodeConfig.distinct_drawers`); needs a local copy. The photograph
      sources have no drawers and ignore it.

  Returns:
    `class_pools.ClassPools` with disjoint classes.

  Raises:
    ValueError: invalid `data_config` (from its `validate()`).
    DataError: missing, corrupt or incomplete data or split files.
  """
  data_config = data_config.validate()
  if data_config.dataset == 'mini_imagenet':
    return mini_imagenet.make_class_pools(data_config)
  if data_config.dataset == 'image_folder':
    return image_folder.make_class_pools(data_config)
  return omniglot_splits.make_class_pools(data_config, drawers=drawers)


def make_episode_pools(
    data_config: config_lib.DataConfig,
    episode_config: config_lib.EpisodeConfig) -> class_pools.ClassPools:
  """`make_class_pools` with what `episode_config`'s protocol needs: the
  drawers only for `distinct_drawers` (they cost a pass over the files)."""
  if episode_config.distinct_drawers:
    return make_class_pools(data_config, drawers=True)
  return make_class_pools(data_config)


def load_pools(config: config_lib.ExperimentConfig) -> class_pools.ClassPools:
  """The data set's pools, checked against the episodes the config asks for
  (every meta-split); with `TrainConfig.trainval`, meta_train holds the
  meta-valid classes too (`class_pools.merge`).

  Raises:
    ValueError: (including `DataError`) bad data, or pools that cannot
      supply the episodes, naming the pool.
  """
  pools = make_episode_pools(config.data, config.episode)
  if config.train.trainval:
    pools = pools._replace(meta_train=class_pools.merge(pools.meta_train,
                                                        pools.meta_valid))
  for name in META_SPLITS:
    episode_config = (config.episode.for_training() if name == 'meta_train'
                      else config.episode)
    episodes.validate_episode_config(getattr(pools, name), episode_config,
                                     name)
  return pools
