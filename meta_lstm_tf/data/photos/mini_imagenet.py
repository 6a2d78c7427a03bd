"""mini-ImageNet from a local copy, with Ravi & Larochelle's class split.

mini-ImageNet (Vinyals et al. 2016; the split of Ravi & Larochelle 2017):
100 ImageNet classes, 600 images each, split by class into 64 meta-train,
16 meta-valid and 20 meta-test classes. It has no official public URL, so
nothing is downloaded; `data_root` holds one of two layouts:

  csv      data_root/images/<file>.jpg, one file per example, and
           data_root/{train,val,test}.csv with the header `filename,label`
           and one row per example (the form the split is distributed in,
           e.g. by the original code, twitter/meta-learning-lstm).
  folders  data_root/{train,val,test}/<label>/*.jpg (the common already
           split form; PNG is read too).

Everything is checked before any image is decoded: a missing or malformed
CSV, a row naming no file in images/, a class in two splits, a class folder
without images. The pools hold uint8 images (`image_files`); every class is
cut to the smallest class's size in its split (600 in a complete copy).

Shape glossary: C classes (64 / 16 / 20), D = 600 images per class,
S = image_size (84), ch = channels (3).
"""

import csv
import os
from typing import Dict, List

from absl import logging

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import errors
from meta_lstm_tf.data.photos import image_files


SPLIT_FILES = (('meta_train', 'train'), ('meta_valid', 'val'),
               ('meta_test', 'test'))
# Ravi & Larochelle's split: classes per split, images per class.
EXPECTED_CLASSES = {'meta_train': 64, 'meta_valid': 16, 'meta_test': 20}
EXPECTED_IMAGES_PER_CLASS = 600
LAYOUT_HELP = (
    'expected Ravi & Larochelle\'s layout, images/ (one JPEG per example) '
    'with train.csv, val.csv, test.csv (header filename,label), or the '
    'already split train/CLASS/*.jpg, val/CLASS/*.jpg, test/CLASS/*.jpg')


def read_split_csv(path: str, image_names: set) -> Dict[str, List[str]]:
  """{label: sorted file names} of one split's CSV.

  Raises:
    DataError: missing file, bad header or row, duplicate file, or a row
      naming no file in `image_names`, naming the CSV line.
  """
  if not os.path.isfile(path):
    raise errors.DataError(f'{path} is missing; {LAYOUT_HELP}')
  by_label: Dict[str, List[str]] = {}
  seen = set()
  with open(path, newline='') as f:
    rows = csv.reader(f)
    header = next(rows, None)
    if [h.strip() for h in header or []] != ['filename', 'label']:
      raise errors.DataError(
          f'{path}:1: header {header!r}, expected filename,label')
    for number, row in enumerate(rows, start=2):
      if not row or not ''.join(row).strip():
        continue
      if len(row) != 2 or not row[0].strip() or not row[1].strip():
        raise errors.DataError(
            f'{path}:{number}: {row!r} is not filename,label')
      filename, label = row[0].strip(), row[1].strip()
      if filename in seen:
        raise errors.DataError(f'{path}:{number}: {filename!r} is listed twice')
      if filename not in image_names:
        raise errors.DataError(
            f'{path}:{number}: {filename!r} (label {label!r}) '
            'names no image in images/')
      seen.add(filename)
      by_label.setdefault(label, []).append(filename)
  if not by_label:
    raise errors.DataError(f'{path} lists no image')
  return {label: sorted(by_label[label]) for label in sorted(by_label)}


def find_layout(data_root: str) -> str:
  """'csv' or 'folders'. Raises errors.DataError naming what is missing."""
  if not data_root or not os.path.isdir(data_root):
    raise errors.DataError(f'data_root={data_root!r} is not a directory; '
                           f'{LAYOUT_HELP}')
  has = lambda name: os.path.exists(os.path.join(data_root, name))
  if has('images') or any(has(f'{s}.csv') for _, s in SPLIT_FILES):
    missing = [name for name in ('images/', 'train.csv', 'val.csv',
                                 'test.csv') if not has(name.rstrip('/'))]
    if missing:
      raise errors.DataError(f'data_root={data_root!r}: {", ".join(missing)} '
                             f'missing; {LAYOUT_HELP}')
    return 'csv'
  missing = [
      f'{s}/' for _, s in SPLIT_FILES
      if not os.path.isdir(os.path.join(data_root, s))
  ]
  if len(missing) == len(SPLIT_FILES):
    raise errors.DataError(f'data_root={data_root!r} holds neither layout; '
                           f'{LAYOUT_HELP}')
  if missing:
    raise errors.DataError(f'data_root={data_root!r}: {", ".join(missing)} '
                           f'missing; {LAYOUT_HELP}')
  return 'folders'


def list_files(data_root: str) -> Dict[str, Dict[str, List[str]]]:
  """{pool name: {class: image paths}}, checked, without decoding.

  Raises:
    DataError: see the module docstring.
  """
  layout = find_layout(data_root)
  listing = {}
  if layout == 'csv':
    image_dir = os.path.join(data_root, 'images')
    image_names = set(os.listdir(image_dir))
    for pool_name, split in SPLIT_FILES:
      by_label = read_split_csv(os.path.join(data_root, f'{split}.csv'),
                                image_names)
      listing[pool_name] = {
          label: [os.path.join(image_dir, f) for f in files]
          for label, files in by_label.items()}
  else:
    for pool_name, split in SPLIT_FILES:
      listing[pool_name] = image_files.list_class_folders(
          os.path.join(data_root, split))
  owner = {}
  for pool_name, classes in listing.items():
    for label in classes:
      if label in owner:
        raise errors.DataError(
            f'data_root={data_root!r}: class {label!r} is in '
            f'both {owner[label]} and {pool_name}; the splits '
            'must be disjoint')
      owner[label] = pool_name
  return listing


def make_class_pools(
    data_config: config_lib.DataConfig) -> class_pools.ClassPools:
  """Checks the copy in `data_config.data_root`, then decodes it.

  Returns:
    uint8 `ClassPools` (see `class_pools.ClassPool`).

  Raises:
    DataError: a missing, incomplete or unreadable copy, naming the file.
  """
  listing = list_files(data_config.data_root)
  for pool_name, classes in listing.items():
    sizes = sorted({len(files) for files in classes.values()})
    if (len(classes) != EXPECTED_CLASSES[pool_name] or
        sizes != [EXPECTED_IMAGES_PER_CLASS]):
      logging.warning(
          'mini-ImageNet %s: %d classes with %s images each; Ravi & '
          'Larochelle\'s split has %d classes of %d.', pool_name,
          len(classes), '/'.join(map(str, sizes)),
          EXPECTED_CLASSES[pool_name], EXPECTED_IMAGES_PER_CLASS)
  return class_pools.ClassPools(
      **{
          pool_name:
          image_files.files_to_pool(classes, data_config.image_size,
                                    data_config.channels)
          for pool_name, classes in listing.items()
      })
