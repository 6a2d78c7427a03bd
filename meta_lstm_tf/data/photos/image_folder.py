"""Any image-folder data set: how a user brings their own few-shot problem.

    data_root/train/<class>/*.png|jpg     meta_train classes
    data_root/val/<class>/*.png|jpg       meta_valid classes
    data_root/test/<class>/*.png|jpg      meta_test classes

This is the layout `tfds.ImageFolder` reads, and TFDS reads it here (file
listing, labels, file bytes); `image_files` decodes, converts every image to
`DataConfig.channels` (gray and RGB may be mixed) and resizes it to
`DataConfig.image_size`. Classes must differ between splits. Every class of
a split is cut to the smallest class's number of images (its first ones by
file name), since a pool is [C, D, ...]; the episode checks name a class too
small for K + Q.

Before anything is decoded, the layout is checked: the three split folders,
at least one class each, no class folder without images, no class in two
splits.

Shape glossary: C classes, D images per class, S = image_size,
ch = channels.
"""

import os
from typing import Dict, List

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import errors
from meta_lstm_tf.data.photos import image_files


SPLIT_FOLDERS = (('meta_train', 'train'), ('meta_valid', 'val'),
                 ('meta_test', 'test'))
LAYOUT_HELP = ('expected data_root/{train,val,test}/CLASS/*.png|jpg (the '
               'layout of tfds.ImageFolder)')


def check_layout(data_root: str) -> Dict[str, Dict[str, List[str]]]:
  """{pool name: {class: image paths}} after checking the layout.

  Raises:
    DataError: naming the missing folder, the empty class or the class in
      two splits.
  """
  if not data_root or not os.path.isdir(data_root):
    raise errors.DataError(f'data_root={data_root!r} is not a directory; '
                           f'{LAYOUT_HELP}')
  listing, owner = {}, {}
  for pool_name, folder in SPLIT_FOLDERS:
    split_dir = os.path.join(data_root, folder)
    if not os.path.isdir(split_dir):
      raise errors.DataError(f'data_root={data_root!r}: {folder}/ is missing; '
                             f'{LAYOUT_HELP}')
    listing[pool_name] = image_files.list_class_folders(split_dir)
    for name in listing[pool_name]:
      if name in owner:
        raise errors.DataError(
            f'data_root={data_root!r}: class {name!r} is in '
            f'both {owner[name]}/ and {folder}/; the splits must '
            'be disjoint')
      owner[name] = folder
  return listing


def _load_split(builder: tfds.core.DatasetBuilder, folder: str,
                data_config: config_lib.DataConfig) -> class_pools.ClassPool:
  """Decodes one split through TFDS and groups it by class."""
  dataset = builder.as_dataset(split=folder, shuffle_files=False,
                               decoders={'image': tfds.decode.SkipDecoding()})
  label_names = builder.info.features['label'].names
  size, channels = data_config.image_size, data_config.channels
  # TFDS gives the examples in a shuffled order; the file name and label
  # travel with each decoded image, and errors are skipped and found below.
  decoded = (dataset
             .map(lambda ex: (ex['image/filename'], ex['label'],
                              image_files.decode_image_bytes(
                                  ex['image'], size, channels)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             .ignore_errors()
             .batch(256)
             .prefetch(1))
  names, labels, batches = [], [], []
  for filenames, batch_labels, images in decoded:
    names.extend(f.decode() for f in filenames.numpy())
    labels.extend(batch_labels.numpy().tolist())
    batches.append(images)
  expected = builder.info.splits[folder].num_examples
  if len(names) != expected:
    every = {f.decode() for f in dataset.map(
        lambda ex: ex['image/filename']).as_numpy_iterator()}
    bad = sorted(every - set(names))
    raise errors.DataError(
        f'{bad[0] if bad else folder}: not a readable PNG or '
        f'JPEG image' + (f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''))
  by_class: Dict[str, List[int]] = {}
  for index in sorted(range(len(names)), key=lambda i: (labels[i], names[i])):
    by_class.setdefault(label_names[labels[index]], []).append(index)
  by_class, sizes = image_files.equal_sized(by_class)
  order = np.array([i for rows in by_class.values() for i in rows], np.int64)
  images = tf.gather(tf.concat(batches, axis=0), order)
  del batches
  per_class = len(order) // len(by_class)
  return class_pools.ClassPool(
      images=tf.reshape(images,
                        [len(by_class), per_class, size, size, channels]),
      class_names=tuple(by_class), class_sizes=sizes)


def make_class_pools(
    data_config: config_lib.DataConfig) -> class_pools.ClassPools:
  """Checks the layout of `data_config.data_root`, then decodes it.

  Returns:
    uint8 `ClassPools` (see `class_pools.ClassPool`).

  Raises:
    DataError: a bad layout or an unreadable image, naming it.
  """
  check_layout(data_config.data_root)
  builder = tfds.ImageFolder(data_config.data_root)
  return class_pools.ClassPools(
      **{
          pool_name: _load_split(builder, folder, data_config)
          for pool_name, folder in SPLIT_FOLDERS
      })
