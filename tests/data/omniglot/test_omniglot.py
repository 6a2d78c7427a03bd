"""Tests for meta_lstm_tf.data.omniglot (loader, sources, catalog, splits)
and the front door `data.pools` on tiny synthetic copies.

The synthetic copies use real alphabet names and global character ids, a few
characters each, 4 drawings per character, 105x105 1-bit PNGs.
"""

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from unittest import mock
import zipfile

from absl.testing import parameterized
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from meta_lstm_tf import config
from meta_lstm_tf.data import errors
from meta_lstm_tf.data import image_ops
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.data.omniglot import catalog as omniglot_catalog
from meta_lstm_tf.data.omniglot import loader as omniglot
from meta_lstm_tf.data.omniglot import sources as omniglot_sources
from meta_lstm_tf.data.omniglot import splits

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
_DRAWINGS = 4
# Greek: meta_train; Hebrew: in LAKE_VALID_ALPHABETS; Angelic: evaluation.
_BACKGROUND = {'Greek': 3, 'Hebrew': 2}
_EVALUATION = {'Angelic': 2}


def _png_bytes(seed: int) -> bytes:
  """A 105x105 1-bit PNG: white background, a few black strokes."""
  rng = np.random.RandomState(seed)
  image = np.full((105, 105), 255, np.uint8)
  for _ in range(3):
    row, col = rng.randint(10, 95, size=2)
    image[row:row + 3, 10:95] = 0
    image[10:95, col:col + 2] = 0
  buffer = io.BytesIO()
  Image.fromarray(image).convert('1').save(buffer, format='PNG')
  return buffer.getvalue()


def _files(alphabets, drawings=_DRAWINGS):
  """Yields (ALPHABET/characterNN/XXXX_YY.png, bytes)."""
  for alphabet, num_characters in alphabets.items():
    for c in range(num_characters):
      label = omniglot_catalog.FIRST_LABEL[alphabet] + c + 1
      for d in range(drawings):
        yield (f'{alphabet}/character{c + 1:02d}/{label:04d}_{d + 1:02d}.png',
               _png_bytes(label * 100 + d))


def _write_folder(root, folder, alphabets, drawings=_DRAWINGS):
  for relpath, data in _files(alphabets, drawings):
    path = os.path.join(root, folder, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(data)


def _write_zip(path, folder, alphabets):
  with zipfile.ZipFile(path, 'w') as archive:
    for relpath, data in _files(alphabets):
      archive.writestr(f'{folder}/{relpath}', data)


def _make_copy(root):
  _write_folder(root, 'images_background', _BACKGROUND)
  _write_folder(root, 'images_evaluation', _EVALUATION)
  return root


def _patched_archive(split, path):
  """Registers `path`'s real size and hash as `split`'s archive checksum."""
  with open(path, 'rb') as f:
    data = f.read()
  info = omniglot_catalog.ARCHIVES[split]
  return mock.patch.dict(
      omniglot_catalog.ARCHIVES, {
          split:
          omniglot_catalog.ArchiveInfo(info.filename, info.folder, len(data),
                                       hashlib.sha256(data).hexdigest())
      })


def _tempdir(test_case) -> str:
  path = tempfile.mkdtemp()
  test_case.addCleanup(shutil.rmtree, path)
  return path


def _examples(dataset):
  return [{k: v.numpy() for k, v in ex.items()} for ex in dataset]


class ResolveOmniglotDirTest(tf.test.TestCase):

  def test_value_wins_and_is_absolute(self):
    with mock.patch.dict(os.environ, {'OMNIGLOT_DIR': '/env'}):
      self.assertEqual(omniglot_sources.resolve_omniglot_dir('rel/dir'),
                       os.path.abspath('rel/dir'))

  def test_falls_back_to_environment(self):
    with mock.patch.dict(os.environ, {'OMNIGLOT_DIR': 'some/where'}):
      self.assertEqual(omniglot_sources.resolve_omniglot_dir(None),
                       os.path.abspath('some/where'))
      self.assertEqual(omniglot_sources.resolve_omniglot_dir(''),
                       os.path.abspath('some/where'))

  def test_none_without_environment(self):
    with mock.patch.dict(os.environ, {'OMNIGLOT_DIR': ''}):
      self.assertIsNone(omniglot_sources.resolve_omniglot_dir(None))


class TablesTest(tf.test.TestCase):

  def test_tables(self):
    self.assertLen(omniglot_catalog.LABEL_NAMES, omniglot_catalog.NUM_CLASSES)
    self.assertLen(omniglot_catalog.ALPHABET_NAMES,
                   omniglot_catalog.NUM_ALPHABETS)
    self.assertEqual(
        sum(omniglot_catalog.NUM_CHARACTERS[a]
            for a in omniglot_catalog.BACKGROUND_ALPHABETS), 964)
    self.assertEqual(
        sum(omniglot_catalog.NUM_CHARACTERS[a]
            for a in omniglot_catalog.EVALUATION_ALPHABETS), 659)

  def test_checksums_are_the_tfds_registered_ones(self):
    url_infos = tfds.builder_cls('omniglot').url_infos
    registered = {os.path.basename(url): info
                  for url, info in url_infos.items()}
    for archive in omniglot_catalog.ARCHIVES.values():
      self.assertEqual(registered[archive.filename].checksum, archive.sha256)
      self.assertEqual(registered[archive.filename].size, archive.size)

  def test_features_match_tfds(self):
    with tempfile.TemporaryDirectory() as data_dir:
      ours = omniglot.OmniglotOffline(data_dir=data_dir).info.features
      theirs = tfds.builder('omniglot', data_dir=data_dir).info.features
    self.assertEqual(repr(ours), repr(theirs))
    self.assertEqual(ours.get_tensor_info(), theirs.get_tensor_info())
    self.assertEqual(ours['label'].num_classes, 1623)
    self.assertEqual(ours['alphabet'].num_classes, 50)

  def test_lake_valid_alphabets_avoid_small_sets(self):
    small = {'Balinese', 'Early_Aramaic', 'Greek', 'Korean', 'Latin',
             'Japanese_(katakana)', 'Sanskrit', 'Tagalog'}
    self.assertEmpty(small & set(splits.LAKE_VALID_ALPHABETS))
    self.assertContainsSubset(splits.LAKE_VALID_ALPHABETS,
                              omniglot_catalog.BACKGROUND_ALPHABETS)


class OfflineSourceTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.omniglot_dir = _make_copy(os.path.join(cls._tmp.name, 'omniglot'))
    cls.data_dir = os.path.join(cls._tmp.name, 'tfds')

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def test_splits_counts_and_values(self):
    train = _examples(omniglot.load_omniglot_split(
        'train', self.omniglot_dir, self.data_dir))
    test = _examples(omniglot.load_omniglot_split(
        'test', self.omniglot_dir, self.data_dir))
    self.assertLen(train, 5 * _DRAWINGS)
    self.assertLen(test, 2 * _DRAWINGS)
    for example in train:
      self.assertEqual(example['image'].shape, (105, 105, 3))
      alphabet = omniglot_catalog.ALPHABET_NAMES[example['alphabet']]
      self.assertIn(alphabet, _BACKGROUND)
      self.assertEqual(
          example['label'],
          omniglot_catalog.FIRST_LABEL[alphabet] + example['alphabet_char_id'])
    self.assertLen({e['label'] for e in train}, 5)

  def test_image_bytes_are_the_original_files(self):
    dataset = omniglot.load_omniglot_split(
        'test', self.omniglot_dir, self.data_dir,
        decoders={'image': tfds.decode.SkipDecoding()})
    expected = {data for _, data in _files(_EVALUATION)}
    self.assertEqual({e['image'] for e in _examples(dataset)}, expected)

  def test_prepared_once(self):
    builder = omniglot.prepare_offline_builder(self.omniglot_dir,
                                               self.data_dir)
    with mock.patch.object(omniglot.OmniglotOffline,
                           'download_and_prepare') as prepare:
      again = omniglot.prepare_offline_builder(self.omniglot_dir,
                                               self.data_dir)
      prepare.assert_not_called()
    self.assertEqual(builder.builder_config.name, again.builder_config.name)
    self.assertCountEqual(builder.info.splits.keys(), ['train', 'test'])

  def test_other_content_gets_another_config(self):
    with tempfile.TemporaryDirectory() as root:
      _write_folder(root, 'images_evaluation', _EVALUATION)
      sources = omniglot_sources.find_sources(root)
      self.assertNotEqual(
          omniglot_sources.fingerprint(sources),
          omniglot_sources.fingerprint(
              omniglot_sources.find_sources(self.omniglot_dir)))

  def test_missing_split_names_source(self):
    with self.assertRaisesRegex(errors.DataError,
                                "'small1'.*images_background_small1.zip"):
      omniglot.load_omniglot_split('small1', self.omniglot_dir, self.data_dir)

  def test_unknown_split(self):
    with self.assertRaisesRegex(errors.DataError, "split_name='validation'"):
      omniglot.load_omniglot_split('validation', self.omniglot_dir,
                                   self.data_dir)

  def test_lake_pools(self):
    pools = pools_lib.make_class_pools(config.DataConfig(
        omniglot_dir=self.omniglot_dir, data_dir=self.data_dir))
    self.assertEqual(pools.meta_train.class_names,
                     ('Greek/character01', 'Greek/character02',
                      'Greek/character03'))
    self.assertEqual(pools.meta_valid.class_names,
                     ('Hebrew/character01', 'Hebrew/character02'))
    self.assertEqual(pools.meta_test.class_names,
                     ('Angelic/character01', 'Angelic/character02'))
    self.assertEqual(pools.meta_train.images.shape, [3, _DRAWINGS, 28, 28, 1])
    self.assertEqual(pools.meta_train.images.dtype, tf.float32)
    # The drawings of Greek/character02 are those files, preprocessed.
    label = omniglot_catalog.FIRST_LABEL['Greek'] + 2
    decoded = np.stack([
        tf.io.decode_png(_png_bytes(label * 100 + d), channels=1)
        for d in range(_DRAWINGS)
    ])
    expected = image_ops.preprocess_images(decoded, 28).numpy()
    actual = pools.meta_train.images[1].numpy()
    self.assertAllClose(
        sorted(actual, key=lambda x: x.tobytes()),
        sorted(expected, key=lambda x: x.tobytes()))
    self.assertGreater(actual.max(), 0.5)  # Strokes are high ...
    self.assertEqual(actual.min(), 0.0)  # ... on a zero background.

  def test_lake_rotations_only_for_meta_train(self):
    pools = pools_lib.make_class_pools(config.DataConfig(
        omniglot_dir=self.omniglot_dir, data_dir=self.data_dir, rotations=True,
        image_size=14))
    self.assertLen(pools.meta_train.class_names, 12)
    self.assertEqual(pools.meta_train.class_names[:4], tuple(
        f'Greek/character01/rot{d:03d}' for d in (0, 90, 180, 270)))
    images = pools.meta_train.images.numpy()
    self.assertEqual(images.shape, (12, _DRAWINGS, 14, 14, 1))
    self.assertAllEqual(images[1], np.rot90(images[0], 1, axes=(1, 2)))
    self.assertAllEqual(images[3], np.rot90(images[0], 3, axes=(1, 2)))
    self.assertLen(pools.meta_valid.class_names, 2)
    self.assertLen(pools.meta_test.class_names, 2)
    self.assertEqual(set(pools.meta_train.alphabets), {'Greek'})

  def test_rotated_alphabets_are_alphabets_of_their_own(self):
    pools = pools_lib.make_class_pools(config.DataConfig(
        omniglot_dir=self.omniglot_dir, data_dir=self.data_dir, rotations=True,
        rotated_alphabets=True, image_size=14))
    # The same classes and images as rotations alone; the alphabets differ.
    self.assertLen(pools.meta_train.class_names, 12)
    self.assertEqual(pools.meta_train.alphabets[:5],
                     ('Greek/rot000', 'Greek/rot090', 'Greek/rot180',
                      'Greek/rot270', 'Greek/rot000'))
    self.assertEqual(pools.meta_train.alphabets.count('Greek/rot090'), 3)
    self.assertEqual(set(pools.meta_valid.alphabets), {'Hebrew'})
    with self.assertRaisesRegex(ValueError,
                                '^rotated_alphabets=True: needs rotation'):
      pools_lib.make_class_pools(config.DataConfig(
          omniglot_dir=self.omniglot_dir, rotated_alphabets=True))

  def _write_split_dir(self, root, lines):
    for filename, content in lines.items():
      with open(os.path.join(root, filename), 'w') as f:
        f.write('\n'.join(content) + '\n')
    return root

  def test_vinyals_pools(self):
    with tempfile.TemporaryDirectory() as split_dir:
      self._write_split_dir(split_dir, {
          'train.txt': ['Greek/character01/rot000', 'Greek/character01/rot090',
                        'Greek/character03/rot180'],
          'val.txt': ['Hebrew/character02/rot270', 'Greek/character02/rot000'],
          'test.txt': ['Angelic/character01/rot000',
                       'Angelic/character02/rot090'],
      })
      pools = pools_lib.make_class_pools(config.DataConfig(
          omniglot_dir=self.omniglot_dir, data_dir=self.data_dir,
          split='vinyals', split_dir=split_dir))
    self.assertEqual(pools.meta_train.class_names,
                     ('Greek/character01/rot000', 'Greek/character01/rot090',
                      'Greek/character03/rot180'))
    self.assertEqual([p.images.shape[0] for p in pools], [3, 2, 2])
    train = pools.meta_train.images.numpy()
    self.assertAllEqual(train[1], np.rot90(train[0], 1, axes=(1, 2)))
    self.assertEqual(pools.meta_valid.alphabets, ('Hebrew', 'Greek'))
    with tempfile.TemporaryDirectory() as split_dir:
      self._write_split_dir(split_dir, {
          'train.txt': ['Greek/character01/rot090'],
          'val.txt': ['Hebrew/character02/rot270'],
          'test.txt': ['Angelic/character02/rot000'],
      })
      pools = pools_lib.make_class_pools(config.DataConfig(
          omniglot_dir=self.omniglot_dir, data_dir=self.data_dir,
          split='vinyals', split_dir=split_dir, rotated_alphabets=True))
    self.assertEqual([p.alphabets for p in pools],
                     [('Greek/rot090',), ('Hebrew/rot270',),
                      ('Angelic/rot000',)])

  @parameterized.named_parameters(
      ('unknown_class', ['Greek/character09/rot000'],
       r"train.txt: class 'Greek/character09' is not in the Omniglot data"),
      ('malformed', ['Greek/character01'],
       r"train.txt:1: 'Greek/character01' is not ALPHABET/characterNN/rotDDD"),
      ('bad_rotation', ['Greek/character01/rot045'], r'rot045'),
      ('duplicate', ['Greek/character01/rot000', 'Greek/character01/rot000'],
       r'train.txt:2: duplicate class'),
      ('overlap', ['Hebrew/character01/rot000'],
       r"'Hebrew/character01/rot000' is also in val.txt|"
       r"val.txt: class 'Hebrew/character01/rot000' is also in train.txt"),
  )
  def test_vinyals_errors(self, train_lines, message):
    with tempfile.TemporaryDirectory() as split_dir:
      self._write_split_dir(split_dir, {
          'train.txt': train_lines,
          'val.txt': ['Hebrew/character01/rot000'],
          'test.txt': ['Angelic/character01/rot000'],
      })
      with self.assertRaisesRegex(errors.DataError, message):
        pools_lib.make_class_pools(
            config.DataConfig(omniglot_dir=self.omniglot_dir,
                              data_dir=self.data_dir, split='vinyals',
                              split_dir=split_dir))

  def test_vinyals_missing_split_dir(self):
    with self.assertRaisesRegex(errors.DataError, "split_dir='/nonexistent"):
      pools_lib.make_class_pools(
          config.DataConfig(omniglot_dir=self.omniglot_dir,
                            data_dir=self.data_dir, split='vinyals',
                            split_dir='/nonexistent/splits'))

  def test_vinyals_missing_file(self):
    with tempfile.TemporaryDirectory() as split_dir:
      self._write_split_dir(split_dir,
                            {'train.txt': ['Greek/character01/rot000']})
      with self.assertRaisesRegex(errors.DataError, r"val.txt' does not exist"):
        pools_lib.make_class_pools(
            config.DataConfig(omniglot_dir=self.omniglot_dir,
                              data_dir=self.data_dir, split='vinyals',
                              split_dir=split_dir))

  def test_unknown_protocol_fails_validation(self):
    with self.assertRaisesRegex(ValueError, "split='vinyal'"):
      pools_lib.make_class_pools(config.DataConfig(
          omniglot_dir=self.omniglot_dir, data_dir=self.data_dir,
          split='vinyal'))


class ArchiveSourceTest(tf.test.TestCase):

  def test_archive_with_registered_checksum(self):
    with tempfile.TemporaryDirectory() as root:
      _make_copy(root)
      archive = os.path.join(root, 'images_background_small1.zip')
      _write_zip(archive, 'images_background_small1', {'Greek': 2})
      with _patched_archive('small1', archive):
        small1 = _examples(omniglot.load_omniglot_split(
            'small1', root, os.path.join(root, 'tfds')))
        self.assertLen(small1, 2 * _DRAWINGS)
        pools = pools_lib.make_class_pools(config.DataConfig(
            omniglot_dir=root, data_dir=os.path.join(root, 'tfds'),
            split='minimal'))
      self.assertEqual(pools.meta_train.class_names,
                       ('Greek/character01', 'Greek/character02'))
      self.assertEqual(pools.meta_valid.class_names,
                       ('Hebrew/character01', 'Hebrew/character02'))

  def test_wrong_size(self):
    with tempfile.TemporaryDirectory() as root:
      archive = os.path.join(root, 'images_background_small2.zip')
      _write_zip(archive, 'images_background_small2', {'Greek': 1})
      with self.assertRaisesRegex(
          errors.DataError, r'images_background_small2.zip: size .* '
          r'1580917 bytes'):
        omniglot.load_omniglot_split('small2', root, root)

  def test_wrong_checksum(self):
    with tempfile.TemporaryDirectory() as root:
      archive = os.path.join(root, 'images_evaluation.zip')
      with open(archive, 'wb') as f:
        f.write(b'\0' * omniglot_catalog.ARCHIVES['test'].size)
      with self.assertRaisesRegex(
          errors.DataError,
          r'images_evaluation.zip: SHA-256 [0-9a-f]{64} does not match .*' +
          omniglot_catalog.ARCHIVES['test'].sha256):
        omniglot.load_omniglot_split('test', root, root)

  def test_corrupt_zip(self):
    with tempfile.TemporaryDirectory() as root:
      archive = os.path.join(root, 'images_background_small1.zip')
      with open(archive, 'wb') as f:
        f.write(b'not a zip file')
      with _patched_archive('small1', archive):
        with self.assertRaisesRegex(errors.DataError, 'corrupt zip'):
          omniglot.load_omniglot_split('small1', root,
                                       os.path.join(root, 'tfds'))


class BadInputTest(tf.test.TestCase):

  def test_missing_directory(self):
    with self.assertRaisesRegex(errors.DataError,
                                "omniglot_dir='/no/such/dir': no such"):
      omniglot.load_omniglot_split('train', '/no/such/dir')

  def test_empty_directory(self):
    with tempfile.TemporaryDirectory() as root:
      with self.assertRaisesRegex(
          errors.DataError, 'holds no Omniglot source.*'
          'images_background.zip'):
        omniglot.load_omniglot_split('train', root)

  def test_empty_extracted_folder(self):
    with tempfile.TemporaryDirectory() as root:
      os.makedirs(os.path.join(root, 'images_background'))
      with self.assertRaisesRegex(errors.DataError,
                                  'images_background: holds no Omniglot'):
        omniglot.load_omniglot_split('train', root, os.path.join(root, 'tfds'))

  def _prepare_with(self, relpath, data):
    root = _tempdir(self)
    _write_folder(root, 'images_evaluation', _EVALUATION)
    path = os.path.join(root, 'images_evaluation', relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(data)
    omniglot.load_omniglot_split('test', root, os.path.join(root, 'tfds'))

  def test_corrupt_png(self):
    with self.assertRaisesRegex(
        errors.DataError,
        r'Angelic/character01/0965_02.png: corrupt or unreadable PNG'):
      self._prepare_with('Angelic/character01/0965_02.png', _png_bytes(0)[:60])

  def test_wrong_image_size(self):
    buffer = io.BytesIO()
    Image.new('1', (28, 28), 1).save(buffer, format='PNG')
    with self.assertRaisesRegex(errors.DataError, 'image is 28x28'):
      self._prepare_with('Angelic/character01/0965_09.png', buffer.getvalue())

  def test_wrong_character_id(self):
    with self.assertRaisesRegex(
        errors.DataError, 'character id 0001 does not belong to '
        'Angelic/character01, which is 0965'):
      self._prepare_with('Angelic/character01/0001_01.png', _png_bytes(0))

  def test_unknown_alphabet(self):
    with self.assertRaisesRegex(errors.DataError, "unknown alphabet 'Klingon'"):
      self._prepare_with('Klingon/character01/0965_01.png', _png_bytes(0))

  def test_unequal_drawings(self):
    root = _tempdir(self)
    _write_folder(root, 'images_background', {'Greek': 1})
    _write_folder(root, 'images_background', {'Hebrew': 1}, drawings=3)
    _write_folder(root, 'images_evaluation', _EVALUATION)
    with self.assertRaisesRegex(errors.DataError,
                                'between 3 .* and 4 drawings'):
      pools_lib.make_class_pools(
          config.DataConfig(omniglot_dir=root,
                            data_dir=os.path.join(root, 'tfds')))

  def test_empty_meta_valid(self):
    root = _tempdir(self)
    _write_folder(root, 'images_background', {'Greek': 2})
    _write_folder(root, 'images_evaluation', _EVALUATION)
    with self.assertRaisesRegex(errors.DataError, 'meta_valid has no class'):
      pools_lib.make_class_pools(
          config.DataConfig(omniglot_dir=root,
                            data_dir=os.path.join(root, 'tfds')))


class ConcurrentPreparationTest(tf.test.TestCase):

  def test_two_processes_prepare_one_copy(self):
    root = _tempdir(self)
    omniglot_dir = _make_copy(os.path.join(root, 'omniglot'))
    data_dir = os.path.join(root, 'tfds')
    script = textwrap.dedent(f"""
        from meta_lstm_tf.data.omniglot import loader as omniglot
        ds = omniglot.load_omniglot_split('train', {omniglot_dir!r},
                                          {data_dir!r})
        print(sum(1 for _ in ds))
        """)
    env = dict(os.environ, PYTHONPATH=_REPO_ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    processes = [subprocess.Popen([sys.executable, '-c', script], env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for process in processes:
      stdout, stderr = process.communicate(timeout=300)
      self.assertEqual(process.returncode, 0, stderr[-2000:])
      self.assertEqual(stdout.split()[-1], str(5 * _DRAWINGS))
    versions = os.listdir(os.path.join(data_dir, 'omniglot_offline'))
    self.assertLen([v for v in versions if not v.endswith('.lock')], 1)


class OnlineSourceTest(tf.test.TestCase):
  """`omniglot_dir=None` goes through `tfds.load('omniglot')` (mocked)."""

  def setUp(self):
    super().setUp()
    # mock_data stands in for the download: no network, so no probe of it.
    probe = mock.patch.object(omniglot, 'probe_download')
    probe.start()
    self.addCleanup(probe.stop)

  def test_load_uses_tfds_omniglot(self):
    with tfds.testing.mock_data(num_examples=3):
      examples = _examples(omniglot.load_omniglot_split('small2'))
    self.assertLen(examples, 3)
    self.assertEqual(examples[0]['image'].shape, (105, 105, 3))
    self.assertCountEqual(examples[0],
                          ['image', 'label', 'alphabet', 'alphabet_char_id'])

  def test_class_pools_from_tfds(self):
    tables = {'train': _BACKGROUND, 'test': _EVALUATION}

    def as_dataset(self, split, decoders=None, **kwargs):
      del self, kwargs
      assert decoders is not None  # Pools decode the PNG bytes themselves.
      examples = {'image': [], 'label': [], 'alphabet': [],
                  'alphabet_char_id': []}
      for relpath, data in _files(tables[str(split)]):
        alphabet, character, filename = relpath.split('/')
        examples['image'].append(data)
        examples['label'].append(int(filename[:4]) - 1)
        examples['alphabet'].append(
            omniglot_catalog.ALPHABET_NAMES.index(alphabet))
        examples['alphabet_char_id'].append(int(character[9:]) - 1)
      return tf.data.Dataset.from_tensor_slices({
          k: tf.constant(v)
          for k, v in examples.items()
      })

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
      pools = pools_lib.make_class_pools(config.DataConfig())
    self.assertEqual(pools.meta_train.class_names,
                     ('Greek/character01', 'Greek/character02',
                      'Greek/character03'))
    self.assertEqual(pools.meta_test.images.shape, [2, _DRAWINGS, 28, 28, 1])


if __name__ == '__main__':
  tf.test.main()


def _closed_port() -> int:
  """A local TCP port nothing listens on (connections are refused)."""
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def _proxies(url: str) -> dict:
  """Environment variables sending every HTTP(S) client to `url`."""
  return {name: value for key in ('http_proxy', 'https_proxy', 'all_proxy',
                                  'no_proxy')
          for name, value in ((key, url if key != 'no_proxy' else ''),
                              (key.upper(), url if key != 'no_proxy'
                               else ''))}


class DownloadFailureTest(tf.test.TestCase):
  """Without a local copy and without network: one clear message, at once."""

  def test_failed_download_names_the_local_copy_flags(self):
    import requests  # pylint: disable=g-import-not-at-top
    error = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='raw.githubusercontent.com'): Max retries")
    with mock.patch.object(omniglot, 'probe_download'), \
         mock.patch.object(omniglot.tfds, 'load', side_effect=error):
      with self.assertRaises(errors.DataError) as raised:
        omniglot.load_omniglot_split('train', None, data_dir=_tempdir(self))
    message = str(raised.exception)
    self.assertIn('could not download Omniglot (ConnectionError', message)
    self.assertIn('--omniglot_dir', message)
    self.assertIn('$OMNIGLOT_DIR', message)
    self.assertIn('images_background.zip', message)

  def test_unreachable_download_host_fails_before_tfds_downloads(self):
    data_dir = _tempdir(self)
    with mock.patch.dict(os.environ,
                         _proxies(f'http://127.0.0.1:{_closed_port()}')), \
         mock.patch.object(omniglot.tfds, 'load',
                           side_effect=AssertionError('TFDS downloads')):
      with self.assertRaises(errors.DataError) as raised:
        omniglot.load_omniglot_split('train', None, data_dir=data_dir)
    message = str(raised.exception)
    self.assertIn('Omniglot is not prepared in the TFDS data directory '
                  f'{data_dir}', message)
    self.assertIn('github.com is unreachable (ConnectionRefusedError', message)
    self.assertIn('--omniglot_dir (or $OMNIGLOT_DIR)', message)

  def test_prepared_data_set_loads_without_a_probe(self):
    builder = mock.Mock()
    builder.is_prepared.return_value = True
    with mock.patch.object(omniglot.tfds, 'builder', return_value=builder), \
         mock.patch.object(omniglot, 'probe_download',
                           side_effect=AssertionError('probed')), \
         mock.patch.object(omniglot.tfds, 'load',
                           return_value='the data set') as load:
      self.assertEqual(omniglot.load_omniglot_split('test', None),
                       'the data set')
    load.assert_called_once()

  def test_probe_connects_directly_or_through_the_proxy(self):
    with socket.socket() as server:
      server.bind(('127.0.0.1', 0))
      server.listen(4)
      port = server.getsockname()[1]
      closed = _closed_port()
      with mock.patch.dict(os.environ, _proxies('')):
        omniglot.probe_download(f'http://127.0.0.1:{port}/')
        with self.assertRaises(ConnectionRefusedError):
          omniglot.probe_download(f'http://127.0.0.1:{closed}/')
      # An unresolvable host, reached through the proxy the environment
      # names; and refused where NO_PROXY bypasses that proxy.
      with mock.patch.dict(os.environ, _proxies(f'http://127.0.0.1:{port}')):
        omniglot.probe_download('https://omniglot.invalid/')
        with mock.patch.dict(os.environ, {'https_proxy': '',
                                          'HTTPS_PROXY': ''}):
          omniglot.probe_download('https://omniglot.invalid/')  # ALL_PROXY.
        with mock.patch.dict(os.environ, {'no_proxy': '127.0.0.1',
                                          'NO_PROXY': '127.0.0.1'}):
          with self.assertRaises(ConnectionRefusedError):
            omniglot.probe_download(f'https://127.0.0.1:{closed}/')

  def test_probe_gives_up_after_its_timeout(self):
    # Name resolution has no timeout of its own: a resolver that hangs
    # counts towards the probe's.
    def hang(*args, **kwargs):
      del args, kwargs
      time.sleep(3)
      return mock.Mock()  # A socket, closed by the abandoned thread.

    start = time.monotonic()
    with mock.patch.dict(os.environ, _proxies('')), \
         mock.patch.object(omniglot.socket, 'create_connection', hang):
      with self.assertRaisesRegex(TimeoutError, 'within 0.5 s'):
        omniglot.probe_download('https://github.com/', timeout=0.5)
    self.assertLess(time.monotonic() - start, 2.0)

  def test_main_job_ends_in_one_error_line(self):
    workdir = tempfile.mkdtemp(prefix='test_download_failure_')
    self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
    code = (
        'import sys, requests\n'
        'import tensorflow_datasets as tfds\n'
        'from meta_lstm_tf.data.omniglot import loader as omniglot\n'
        'def load(*args, **kwargs):\n'
        '  raise requests.exceptions.ConnectionError("no network")\n'
        'tfds.load = load\n'
        'omniglot.probe_download = lambda *args, **kwargs: None\n'
        'from meta_lstm_tf import main\n'
        'sys.argv = ["main", "--workdir=" + sys.argv[1], "--max_steps=1"]\n'
        'main.run()\n')
    root = _REPO_ROOT
    env = {k: v for k, v in os.environ.items() if k != 'OMNIGLOT_DIR'}
    env.update(PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL='3',
               HOME=tempfile.mkdtemp(dir=workdir))
    env.pop('TFDS_DATA_DIR', None)
    result = subprocess.run([sys.executable, '-c', code, workdir],
                            capture_output=True, text=True, env=env,
                            check=False)
    self.assertEqual(result.returncode, 1, result.stderr[-2000:])
    self.assertNotIn('Traceback', result.stderr)
    self.assertStartsWith(result.stderr.strip().splitlines()[-1],
                          'error: TFDS could not download Omniglot '
                          '(ConnectionError: no network)')

  def test_offline_first_run_of_the_readme_fails_fast_and_briefly(self):
    """The README's command, no local copy, no TFDS data, no network."""
    tmp = _tempdir(self)
    home = os.path.join(tmp, 'home')
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items()
           if k not in ('OMNIGLOT_DIR', 'TFDS_DATA_DIR', 'TF_CPP_MIN_LOG_LEVEL',
                        'PYTHONPATH')}
    # No cached TFDS data (~/tensorflow_datasets), and every HTTP(S)
    # connection refused, as on a machine without network.
    env.update(HOME=home, **_proxies(f'http://127.0.0.1:{_closed_port()}'))
    workdir = os.path.join(tmp, 'run')
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, '-m', 'meta_lstm_tf.main',
         '--flagfile=configs/mini.flags', f'--workdir={workdir}'],
        cwd=_REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    seconds = time.monotonic() - start
    lines = result.stdout.strip().splitlines()
    self.assertEqual(result.returncode, 1, result.stdout[-3000:])
    # Seconds, not TFDS's minutes of download retries; TensorFlow's import
    # alone takes 5-8 s on a 2-core AVX2 machine (10 s was exceeded there
    # under load).
    self.assertLess(seconds, 20.0, result.stdout[-3000:])
    self.assertLessEqual(len(lines), 15, result.stdout)
    self.assertStartsWith(lines[-1], 'error: Omniglot is not prepared')
    self.assertIn('--omniglot_dir (or $OMNIGLOT_DIR)', lines[-1])
    self.assertNotIn('Traceback', result.stdout)
    self.assertFalse(os.path.exists(workdir))

