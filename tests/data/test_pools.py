"""Tests for the data front door `meta_lstm_tf.data.pools`: which source each
`DataConfig.dataset` reaches, what it is given, and the checks of
`load_pools`. The sources themselves are tested in `omniglot/` and `photos/`.
"""

from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.data.omniglot import splits as omniglot_splits
from meta_lstm_tf.data.photos import image_folder
from meta_lstm_tf.data.photos import mini_imagenet

_SOURCES = {'omniglot': omniglot_splits, 'mini_imagenet': mini_imagenet,
            'image_folder': image_folder}


def _data_config(dataset):
  if dataset == 'omniglot':
    return config.DataConfig(omniglot_dir='/unused')
  return config.DataConfig(dataset=dataset, data_root='/unused', channels=3)


def _pools(num_classes=(5, 5, 5), drawings=4):
  def pool(offset, count):
    images = np.zeros((count, drawings, 4, 4, 1), np.float32)
    names = tuple(f'a/character{offset + i:02d}' for i in range(count))
    return class_pools.ClassPool(tf.constant(images), names)
  return class_pools.ClassPools(*(pool(100 * i, n)
                                  for i, n in enumerate(num_classes)))


def _drawers(count, depth):
  """Drawers [count, depth]: every class's drawings by 0..depth-1."""
  return np.tile(np.arange(depth, dtype=np.int32), (count, 1))


class DispatchTest(tf.test.TestCase, parameterized.TestCase):

  def _patch_sources(self):
    mocks = {}
    for dataset, module in _SOURCES.items():
      patcher = mock.patch.object(module, 'make_class_pools',
                                  return_value=dataset)
      mocks[dataset] = patcher.start()
      self.addCleanup(patcher.stop)
    return mocks

  @parameterized.parameters('omniglot', 'mini_imagenet', 'image_folder')
  def test_each_dataset_reaches_its_source_only(self, dataset):
    mocks = self._patch_sources()
    data_config = _data_config(dataset)
    self.assertEqual(pools_lib.make_class_pools(data_config), dataset)
    for name, source in mocks.items():
      if name == dataset:
        source.assert_called_once()
        self.assertEqual(source.call_args.args, (data_config,))
      else:
        source.assert_not_called()

  def test_drawers_reach_omniglot(self):
    mocks = self._patch_sources()
    data_config = _data_config('omniglot')
    pools_lib.make_class_pools(data_config, drawers=True)
    mocks['omniglot'].assert_called_once_with(data_config, drawers=True)
    pools_lib.make_class_pools(data_config)
    mocks['omniglot'].assert_called_with(data_config, drawers=False)

  @parameterized.parameters(False, True)
  def test_episode_pools_find_drawers_only_for_distinct_drawers(
      self, distinct_drawers):
    mocks = self._patch_sources()
    data_config = _data_config('omniglot')
    pools_lib.make_episode_pools(
        data_config, config.EpisodeConfig(distinct_drawers=distinct_drawers))
    mocks['omniglot'].assert_called_once_with(data_config,
                                              drawers=distinct_drawers)

  def test_invalid_config_fails_before_any_source(self):
    mocks = self._patch_sources()
    with self.assertRaisesRegex(ValueError, 'dataset'):
      pools_lib.make_class_pools(config.DataConfig(dataset='cifar'))
    with self.assertRaisesRegex(ValueError, 'data_root'):
      pools_lib.make_class_pools(config.DataConfig(dataset='mini_imagenet',
                                                   channels=3))
    for source in mocks.values():
      source.assert_not_called()

  def test_omniglot_splits_refuse_other_datasets(self):
    with self.assertRaisesRegex(ValueError, "dataset='omniglot'"):
      omniglot_splits.make_class_pools(_data_config('mini_imagenet'))


class LoadPoolsTest(tf.test.TestCase, parameterized.TestCase):

  def test_returns_the_pools_when_every_split_can_supply_episodes(self):
    pools = _pools()
    experiment = config.ExperimentConfig(
        episode=config.EpisodeConfig(num_ways=5, num_shots=1, num_queries=3))
    with mock.patch.object(pools_lib, 'make_class_pools',
                           return_value=pools) as make:
      self.assertIs(pools_lib.load_pools(experiment), pools)
    make.assert_called_once_with(experiment.data)

  @parameterized.parameters(('meta_train', 0), ('meta_valid', 1),
                            ('meta_test', 2))
  def test_names_the_split_with_too_few_classes(self, name, index):
    num_classes = [5, 5, 5]
    num_classes[index] = 4
    experiment = config.ExperimentConfig(
        episode=config.EpisodeConfig(num_ways=5, num_shots=1, num_queries=3))
    with mock.patch.object(pools_lib, 'make_class_pools',
                           return_value=_pools(num_classes)):
      with self.assertRaisesRegex(ValueError,
                                  f'^{name}: num_ways=5 exceeds the 4'):
        pools_lib.load_pools(experiment)

  def test_too_few_drawings_per_class(self):
    experiment = config.ExperimentConfig(
        episode=config.EpisodeConfig(num_ways=5, num_shots=2, num_queries=3))
    with mock.patch.object(pools_lib, 'make_class_pools',
                           return_value=_pools(drawings=4)):
      with self.assertRaisesRegex(ValueError,
                                  '^meta_train: num_shots .* exceeds'):
        pools_lib.load_pools(experiment)


  def test_trainval_meta_trains_on_the_valid_classes_too(self):
    # 4 meta-train classes cannot give 5-way episodes; with the 5 meta-valid
    # classes merged in they can, and meta_valid and meta_test are as given.
    pools = _pools((4, 5, 5))
    episode = config.EpisodeConfig(num_ways=5, num_shots=1, num_queries=3)
    experiment = config.ExperimentConfig(
        episode=episode, train=config.TrainConfig(trainval=True))
    with mock.patch.object(pools_lib, 'make_class_pools', return_value=pools):
      loaded = pools_lib.load_pools(experiment)
      with self.assertRaisesRegex(ValueError, '^meta_train: num_ways=5'):
        pools_lib.load_pools(config.ExperimentConfig(episode=episode))
    self.assertEqual(loaded.meta_train.class_names,
                     pools.meta_train.class_names +
                     pools.meta_valid.class_names)
    self.assertEqual(loaded.meta_train.images.shape, [9, 4, 4, 4, 1])
    self.assertIs(loaded.meta_valid, pools.meta_valid)
    self.assertIs(loaded.meta_test, pools.meta_test)


class MergeTest(tf.test.TestCase):

  def _pool(self, first_id, count, drawings, **fields):
    ids = np.arange(first_id, first_id + count * drawings, dtype=np.float32)
    images = np.broadcast_to(ids.reshape(count, drawings, 1, 1, 1),
                             (count, drawings, 2, 2, 1))
    return class_pools.ClassPool(
        tf.constant(images),
        tuple(f'a/character{first_id + i:02d}' for i in range(count)),
        **fields)

  def test_keeps_both_pools_classes_in_order(self):
    a = self._pool(0, 2, 3, alphabets=('a', 'a'), drawers=_drawers(2, 3))
    b = self._pool(50, 3, 3, alphabets=('b', 'b', 'c'), drawers=_drawers(3, 3))
    merged = class_pools.merge(a, b)
    self.assertAllEqual(merged.images,
                        np.concatenate([a.images.numpy(), b.images.numpy()]))
    self.assertEqual(merged.class_names, a.class_names + b.class_names)
    self.assertEqual(merged.alphabets, ('a', 'a', 'b', 'b', 'c'))
    self.assertAllEqual(merged.drawers, _drawers(5, 3))
    self.assertIsNone(merged.class_sizes)
    # A field one pool lacks is dropped.
    self.assertIsNone(class_pools.merge(a, self._pool(50, 3, 3)).alphabets)

  def test_cuts_classes_to_the_smaller_depth_and_records_sizes(self):
    a, b = self._pool(0, 2, 4), self._pool(50, 1, 3, class_sizes=(7,))
    merged = class_pools.merge(a, b)
    self.assertAllEqual(merged.images[:2], a.images[:, :3])
    self.assertAllEqual(merged.images[2:], b.images)
    self.assertEqual(merged.class_sizes, (4, 4, 7))

  def test_refuses_pools_that_do_not_fit(self):
    a = self._pool(0, 2, 3)
    other_side = class_pools.ClassPool(tf.zeros([2, 3, 3, 3, 1]), ('x', 'y'))
    with self.assertRaisesRegex(ValueError, 'cannot merge pools of images'):
      class_pools.merge(a, other_side)
    with self.assertRaisesRegex(ValueError, 'with drawers and 3 and 4'):
      class_pools.merge(self._pool(0, 2, 3, drawers=_drawers(2, 3)),
                        self._pool(9, 2, 4, drawers=_drawers(2, 4)))


if __name__ == '__main__':
  tf.test.main()
