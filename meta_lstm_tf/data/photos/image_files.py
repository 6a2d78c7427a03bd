"""Photograph files -> uint8 class pools, for mini-ImageNet and image folders.

Every image is decoded once (`tf.io.decode_image`: PNG or JPEG, gray, RGB or
RGBA, all converted to the requested channels, so a folder may mix them),
resized to S x S with area interpolation (`image_ops.preprocess_images`, as
the exported model does) and kept as uint8: a quarter of float32's memory.
Episodes scale only the images they gather (`image_ops.to_model_inputs`).

Decoding runs in `tf.data` with errors skipped and counted: a file that is
not a readable PNG or JPEG is reported by name, after the pass, instead of
stopping the pipeline with a message that names no file.

Memory: the images of a split are decoded in batches, then concatenated into
one tensor, so a split peaks at about twice its uint8 size, and the pools
keep one copy (mini-ImageNet at 84 x 84 x 3: 60,000 x 21,168 bytes = 1.27 GB).

Shape glossary: n images; C classes; D images per class; S = image_size;
ch = channels.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import errors
from meta_lstm_tf.data import image_ops


# What `tf.io.decode_image` reads and `tfds.ImageFolder` lists.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
_DECODE_BATCH = 256


def is_image_name(filename: str) -> bool:
  return (filename.lower().endswith(IMAGE_EXTENSIONS) and
          not filename.startswith('.'))


def decode_image_bytes(data: tf.Tensor, image_size: int,
                       channels: int) -> tf.Tensor:
  """Encoded bytes -> uint8 [S, S, ch]."""
  image = tf.io.decode_image(data, channels=channels, expand_animations=False)
  image = image_ops.preprocess_images(image[tf.newaxis], image_size, channels,
                                      invert=False)[0]
  return tf.cast(tf.round(image * 255.0), tf.uint8)


def decode_dataset(encoded: tf.data.Dataset, names: Sequence[str],
                   image_size: int, channels: int) -> tf.Tensor:
  """Decodes a dataset of encoded images, in order.

  Args:
    encoded: `tf.data.Dataset` of scalar strings (file bytes), n elements.
    names: the n file names, for error messages.
    image_size: S.
    channels: ch, 1 or 3.

  Returns:
    uint8 [n, S, S, ch].

  Raises:
    DataError: naming the files that are not readable PNG or JPEG images.
  """
  count = len(names)
  indexed = tf.data.Dataset.zip(
      (tf.data.Dataset.range(count), encoded))
  decoded = (indexed
             .map(lambda i, data: (i, decode_image_bytes(data, image_size,
                                                         channels)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             .ignore_errors()
             .batch(_DECODE_BATCH)
             .prefetch(1))
  batches, seen = [], np.zeros(count, bool)
  for indices, images in decoded:
    seen[indices.numpy()] = True
    batches.append(images)
  bad = [names[i] for i in np.flatnonzero(~seen)]
  if bad:
    more = f' (and {len(bad) - 1} more: {", ".join(bad[1:4])}...)' if len(
        bad) > 1 else ''
    raise errors.DataError(f'{bad[0]}: not a readable PNG or JPEG image{more}')
  if not batches:
    return tf.zeros([0, image_size, image_size, channels], tf.uint8)
  return tf.concat(batches, axis=0)


def decode_files(paths: Sequence[str], image_size: int,
                 channels: int) -> tf.Tensor:
  """uint8 [n, S, S, ch] of image files, in order (see `decode_dataset`)."""
  paths = list(paths)
  encoded = tf.data.Dataset.from_tensor_slices(
      tf.constant(paths, tf.string) if paths else tf.zeros([0], tf.string)
  ).map(tf.io.read_file, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
  return decode_dataset(encoded, paths, image_size, channels)


def list_class_folders(split_dir: str) -> Dict[str, List[str]]:
  """{class folder: sorted image paths} of `split_dir/CLASS/*.png|jpg`.

  Files with other extensions are ignored (as `tfds.ImageFolder` does).

  Raises:
    DataError: no class folder, or a class folder without images.
  """
  classes = {}
  for name in sorted(os.listdir(split_dir)):
    class_dir = os.path.join(split_dir, name)
    if name.startswith('.') or not os.path.isdir(class_dir):
      continue
    files = sorted(f for f in os.listdir(class_dir) if is_image_name(f))
    if not files:
      raise errors.DataError(f'class folder {class_dir!r} holds no image '
                             f'({", ".join(IMAGE_EXTENSIONS)})')
    classes[name] = [os.path.join(class_dir, f) for f in files]
  if not classes:
    raise errors.DataError(f'{split_dir!r} holds no class folder (expected '
                           'CLASS/*.jpg or CLASS/*.png)')
  return classes


def equal_sized(files_by_class: Dict[str, Sequence]
                ) -> Tuple[Dict[str, list], Optional[Tuple[int, ...]]]:
  """Cuts every class to the smallest's size (a pool is [C, D, ...]).

  Returns:
    ({class: its first D items}, the original sizes, or None when all
    classes had D).
  """
  sizes = tuple(len(items) for items in files_by_class.values())
  smallest = min(sizes)
  cut = {name: list(items)[:smallest]
         for name, items in files_by_class.items()}
  return cut, (None if max(sizes) == smallest else sizes)


def files_to_pool(files_by_class: Dict[str, Sequence[str]], image_size: int,
                  channels: int) -> class_pools.ClassPool:
  """Decodes `{class: image paths}` into a uint8 `ClassPool` (classes in
  the dict's order, each cut to the smallest class's size)."""
  files_by_class, sizes = equal_sized(files_by_class)
  names = list(files_by_class)
  per_class = len(files_by_class[names[0]])
  images = decode_files([p for n in names for p in files_by_class[n]],
                        image_size, channels)
  return class_pools.ClassPool(
      images=tf.reshape(
          images, [len(names), per_class, image_size, image_size, channels]),
      class_names=tuple(names), class_sizes=sizes)
