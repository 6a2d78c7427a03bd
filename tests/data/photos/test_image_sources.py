"""mini-ImageNet and image-folder sources on small generated trees.

Both mini-ImageNet layouts (CSV + images/, split class folders) and the
image-folder source, and every bad input: missing CSV or split folder, a CSV
row naming no image, an unreadable file, an empty class, a class in two
splits, a class too small for K + Q; grayscale and RGB mixed (converted).
"""

import csv
import os
import shutil

import tensorflow as tf

from meta_lstm_tf import config
from meta_lstm_tf.training import train_lib
from meta_lstm_tf.data import episodes
from meta_lstm_tf.data import errors
from meta_lstm_tf.data import pools as pools_lib
from tests.fixtures import image_trees

SIZE = 12


def data_config(dataset, root, channels=3):
  return config.DataConfig(dataset=dataset, data_root=root,
                           channels=channels, image_size=SIZE)


def experiment(dataset, root, ways=2, shots=1, queries=2):
  return config.ExperimentConfig(
      data=data_config(dataset, root),
      episode=config.EpisodeConfig(ways, shots, queries),
      learner=config.LearnerConfig(num_ways=ways, image_size=SIZE,
                                   channels=3, num_filters=4, num_blocks=2),
      train=config.TrainConfig(max_steps=1, eval_episodes=1,
                               test_episodes=1),
      runtime=config.RuntimeConfig(export=False, quiet=True))


class ImageSourcesTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), 'trees')
    shutil.rmtree(cls.root, ignore_errors=True)
    cls.csv_root = os.path.join(cls.root, 'csv')
    cls.folder_root = os.path.join(cls.root, 'folders')
    image_trees.write_csv_tree(cls.csv_root)
    image_trees.write_folder_tree(cls.folder_root)

  def copy(self, source):
    target = os.path.join(self.get_temp_dir(), 'copy')
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target

  def test_every_layout_gives_the_same_uint8_pools(self):
    pools = [pools_lib.make_class_pools(data_config('mini_imagenet', root))
             for root in (self.csv_root, self.folder_root)]
    pools.append(pools_lib.make_class_pools(data_config('image_folder',
                                                        self.folder_root)))
    for name, labels in zip(('meta_train', 'meta_valid', 'meta_test'),
                            (s[1] for s in image_trees.SPLITS)):
      reference = getattr(pools[0], name)
      self.assertEqual(reference.class_names, labels)
      self.assertEqual(reference.images.dtype, tf.uint8)
      self.assertEqual(reference.images.shape, (len(labels), 6, SIZE, SIZE, 3))
      for other in pools[1:]:
        self.assertEqual(getattr(other, name).class_names, labels)
        self.assertAllEqual(getattr(other, name).images, reference.images)
    # Images 2 and 5 of every class are grayscale PNGs: converted, equal
    # channels; the others are RGB.
    images = pools[0].meta_train.images.numpy()
    self.assertAllEqual(images[:, 2, ..., 0], images[:, 2, ..., 1])
    self.assertNotAllEqual(images[:, 0, ..., 0], images[:, 0, ..., 1])

  def test_episodes_are_float_rgb_and_gray_is_one_channel(self):
    pools = pools_lib.make_class_pools(
        data_config('mini_imagenet', self.csv_root))
    episode = next(iter(episodes.make_eval_dataset(
        pools.meta_test, config.EpisodeConfig(2, 1, 3), 1, seed=0)))
    self.assertEqual(episode.query_images.dtype, tf.float32)
    self.assertEqual(episode.query_images.shape, [6, SIZE, SIZE, 3])
    self.assertBetween(float(tf.reduce_max(episode.query_images)), 0.5, 1.0)
    gray = pools_lib.make_class_pools(data_config('image_folder',
                                                  self.folder_root, channels=1))
    self.assertEqual(gray.meta_valid.images.shape, (2, 6, SIZE, SIZE, 1))

  def test_missing_csv_or_folder_is_named_with_the_layout(self):
    root = self.copy(self.csv_root)
    os.remove(os.path.join(root, 'val.csv'))
    with self.assertRaisesRegex(errors.DataError,
                                r'val\.csv missing.*expected'):
      pools_lib.make_class_pools(data_config('mini_imagenet', root))
    root = self.copy(self.folder_root)
    shutil.rmtree(os.path.join(root, 'test'))
    with self.assertRaisesRegex(errors.DataError, 'test/ missing.*expected'):
      pools_lib.make_class_pools(data_config('mini_imagenet', root))
    with self.assertRaisesRegex(errors.DataError,
                                'test/ is missing.*ImageFolder'):
      pools_lib.make_class_pools(data_config('image_folder', root))
    with self.assertRaisesRegex(errors.DataError, 'neither layout'):
      pools_lib.make_class_pools(
          data_config('mini_imagenet', self.get_temp_dir()))

  def test_csv_row_naming_no_image_is_named(self):
    root = self.copy(self.csv_root)
    with open(os.path.join(root, 'test.csv'), 'a', newline='') as f:
      csv.writer(f).writerow(('n20100000099.jpg', 'n201'))
    with self.assertRaisesRegex(
        errors.DataError, r"test\.csv:14: 'n20100000099\.jpg' \(label 'n201'\) "
        'names no image'):
      pools_lib.make_class_pools(data_config('mini_imagenet', root))

  def test_unreadable_image_is_named(self):
    for dataset, source, relpath in (
        ('mini_imagenet', self.csv_root, 'images/n10100000001.png'),
        ('image_folder', self.folder_root, 'val/n101/0001.png')):
      root = self.copy(source)
      with open(os.path.join(root, relpath), 'wb') as f:
        f.write(b'not an image at all')
      with self.assertRaisesRegex(
          errors.DataError,
          relpath.replace('.', r'\.') + ': not a readable PNG or JPEG'):
        pools_lib.make_class_pools(data_config(dataset, root))

  def test_empty_class_and_shared_class_are_named(self):
    root = self.copy(self.folder_root)
    os.makedirs(os.path.join(root, 'train', 'empty'))
    with self.assertRaisesRegex(errors.DataError, 'empty.*holds no image'):
      pools_lib.make_class_pools(data_config('image_folder', root))
    os.rmdir(os.path.join(root, 'train', 'empty'))
    shutil.copytree(os.path.join(root, 'val', 'n101'),
                    os.path.join(root, 'test', 'n101'))
    with self.assertRaisesRegex(errors.DataError, "'n101' is in both"):
      pools_lib.make_class_pools(data_config('image_folder', root))

  def test_class_too_small_is_named_and_nothing_is_written(self):
    root = self.copy(self.folder_root)
    for name in ('0003.jpg', '0004.png', '0005.png'):
      os.remove(os.path.join(root, 'train', 'n003', name))
    pools = pools_lib.make_class_pools(data_config('image_folder', root))
    # Every class is cut to the smallest (3 images).
    self.assertEqual(pools.meta_train.images.shape[1], 3)
    self.assertEqual(pools.meta_train.class_sizes, (6, 6, 3, 6))
    workdir = os.path.join(self.get_temp_dir(), 'never_written')
    with self.assertRaisesRegex(
        ValueError, "meta_train: class 'n003' has 3 images, fewer than "
        'num_shots \\+ num_queries = 1 \\+ 3 = 4'):
      train_lib.train_and_evaluate(
          experiment('image_folder', root, queries=3), workdir)
    self.assertFalse(os.path.exists(workdir))

  def test_flags_choose_per_data_set_defaults(self):
    from absl import flags  # pylint: disable=g-import-not-at-top
    from meta_lstm_tf.bin import cli  # pylint: disable=g-import-not-at-top

    def parse(*argv):
      values = flags.FlagValues()
      cli.define_flags(values)
      values(['prog', '--workdir=/tmp/x', *argv])
      return cli.config_from_flags(values)

    omniglot = parse()
    self.assertEqual((omniglot.data.image_size, omniglot.data.channels,
                      omniglot.learner.channels), (28, 1, 1))
    mini = parse('--dataset=mini_imagenet', f'--data_root={self.csv_root}')
    self.assertEqual((mini.data.image_size, mini.learner.channels), (84, 3))
    with self.assertRaisesRegex(ValueError, 'data_root=None'):
      parse('--dataset=image_folder')
    with self.assertRaisesRegex(ValueError, 'channels=3'):
      parse('--channels=3')


if __name__ == '__main__':
  tf.test.main()
