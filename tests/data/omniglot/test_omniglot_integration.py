"""Integration tests on the real Omniglot copy named by `OMNIGLOT_DIR`.

CI sets `OMNIGLOT_DIR=../shared/data/omniglot` (relative paths are resolved
against the repository root). The offline TFDS copy is prepared once into the
default TFDS data directory (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`,
about 10 s) and reused by later runs.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from meta_lstm_tf import config
from meta_lstm_tf.data import episodes
from meta_lstm_tf.data.omniglot import loader as omniglot
from meta_lstm_tf.data.omniglot import catalog as omniglot_catalog
from meta_lstm_tf.data.omniglot import sources as omniglot_sources
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.data.omniglot import splits
from tests.fixtures import real_data

_OMNIGLOT_DIR = real_data.OMNIGLOT_DIR


@real_data.requires_omniglot
class OfflineOmniglotTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.builder = omniglot.prepare_offline_builder(_OMNIGLOT_DIR)

  def _load(self, split_name):
    return omniglot.load_omniglot_split(
        split_name, _OMNIGLOT_DIR,
        decoders={'image': tfds.decode.SkipDecoding()})

  def test_counts(self):
    expected = {'train': (19280, 964), 'test': (13180, 659),
                'small1': (2720, 136), 'small2': (3120, 156)}
    for split_name, (num_examples, num_characters) in expected.items():
      labels = np.concatenate([
          batch.numpy() for batch in
          self._load(split_name).map(lambda e: e['label']).batch(4096)])
      self.assertLen(labels, num_examples, split_name)
      self.assertLen(np.unique(labels), num_characters, split_name)
      self.assertEqual(self.builder.info.splits[split_name].num_examples,
                       num_examples)

  def test_sources(self):
    sources = omniglot_sources.find_sources(_OMNIGLOT_DIR)
    self.assertEqual(sources['small1'].kind, 'archive')  # Checksum verified.
    self.assertEqual(sources['small2'].kind, 'archive')
    self.assertEqual(sources['train'].kind, 'directory')
    self.assertEqual(sources['test'].kind, 'directory')

  def test_feature_spec_matches_tfds(self):
    data_dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, data_dir)
    # Info from TFDS's code only: nothing is downloaded.
    reference = tfds.builder('omniglot', data_dir=data_dir).info
    self.assertEqual(repr(self.builder.info.features),
                     repr(reference.features))
    self.assertEqual(self.builder.info.features.get_tensor_info(),
                     reference.features.get_tensor_info())
    self.assertEqual(self.builder.info.supervised_keys,
                     reference.supervised_keys)
    example = next(iter(omniglot.load_omniglot_split('test', _OMNIGLOT_DIR)))
    self.assertEqual(example['image'].shape, (105, 105, 3))
    self.assertEqual(example['image'].dtype, tf.uint8)
    self.assertCountEqual(np.unique(example['image'].numpy()), [0, 255])

  def test_examples_are_the_files(self):
    for example in self._load('test').take(5):
      alphabet = omniglot_catalog.ALPHABET_NAMES[int(example['alphabet'])]
      character = int(example['alphabet_char_id']) + 1
      label = int(example['label'])
      self.assertEqual(label,
                       omniglot_catalog.FIRST_LABEL[alphabet] + character - 1)
      folder = os.path.join(_OMNIGLOT_DIR, 'images_evaluation', alphabet,
                            f'character{character:02d}')
      contents = set()
      for filename in os.listdir(folder):
        self.assertTrue(filename.startswith(f'{label + 1:04d}_'))
        with open(os.path.join(folder, filename), 'rb') as f:
          contents.add(f.read())
      self.assertIn(example['image'].numpy(), contents)


@real_data.requires_omniglot
class ClassPoolsTest(tf.test.TestCase):

  def _pools(self, **kwargs):
    return pools_lib.make_class_pools(
        config.DataConfig(omniglot_dir=_OMNIGLOT_DIR, **kwargs))

  def _assert_disjoint(self, pools):
    names = [set(pool.class_names) for pool in pools]
    for pool, name_set in zip(pools, names):
      self.assertLen(name_set, len(pool.class_names))
    self.assertEmpty(names[0] & names[1])
    self.assertEmpty(names[0] & names[2])
    self.assertEmpty(names[1] & names[2])

  def test_lake(self):
    pools = self._pools()
    self.assertEqual([p.images.shape[0] for p in pools], [814, 150, 659])
    self.assertEqual(pools.meta_train.images.shape[1:], [20, 28, 28, 1])
    self._assert_disjoint(pools)
    valid_alphabets = {n.split('/')[0] for n in pools.meta_valid.class_names}
    self.assertEqual(valid_alphabets, set(splits.LAKE_VALID_ALPHABETS))
    test_alphabets = {n.split('/')[0] for n in pools.meta_test.class_names}
    self.assertEqual(test_alphabets, set(omniglot_catalog.EVALUATION_ALPHABETS))
    images = pools.meta_test.images.numpy()
    self.assertEqual(images.min(), 0.0)
    self.assertEqual(images.max(), 1.0)
    self.assertLess(images.mean(), 0.2)  # Mostly background: strokes are 1.
    # Episodes from the real pool keep their invariants.
    episode = next(iter(episodes.make_eval_dataset(
        pools.meta_test, config.EpisodeConfig(20, 5, 15), 1, seed=0)))
    self.assertEqual(episode.support_images.shape, [100, 28, 28, 1])
    self.assertAllEqual(np.bincount(episode.query_labels.numpy()), [15] * 20)

  def test_minimal(self):
    pools = self._pools(split='minimal', minimal_subset='small2')
    self.assertEqual([p.images.shape[0] for p in pools], [156, 150, 659])
    self._assert_disjoint(pools)

  def test_vinyals(self):
    pools = self._pools(
        split='vinyals',
        split_dir=os.path.join(_OMNIGLOT_DIR, 'splits', 'vinyals'))
    self.assertEqual([p.images.shape[0] for p in pools], [4112, 688, 1692])
    self._assert_disjoint(pools)
    self.assertTrue(all(n.split('/')[-1] in ('rot000', 'rot090', 'rot180',
                                              'rot270')
                        for n in pools.meta_test.class_names))


if __name__ == '__main__':
  tf.test.main()
