"""Support sets from image folders (one subfolder per class)."""

import os
from typing import List, Tuple

import numpy as np
import tensorflow as tf

from meta_lstm_tf.serving.modules import Images

# What `image_ops.decode_images` reads.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def load_support_folder(path: str, channels: int = 1
                        ) -> Tuple[Images, np.ndarray, List[str]]:
  """Reads a support set stored as one subfolder of images per class.

  Classes are the subfolder names in sorted order; label j is the j-th.

  Args:
    path: a directory `path/CLASS_NAME/*.png|jpg|jpeg`.
    channels: ch, 1 (grayscale) or 3 (RGB); images are converted.

  Returns:
    (images, labels int32 [S], class names [N]). `images` are natural
    images in [0, 1]: float32 [S, H, W, ch] when all have the same size,
    else a list of [H_i, W_i, ch] arrays (both accepted by
    `export_adapted_learner`).

  Raises:
    ValueError: no class folder, a class without images, or an unreadable
      image, naming it.
  """
  if not os.path.isdir(path):
    raise ValueError(f'support folder {path!r} does not exist')
  class_names = sorted(name for name in os.listdir(path)
                       if os.path.isdir(os.path.join(path, name)) and
                       not name.startswith('.'))
  if not class_names:
    raise ValueError(f'support folder {path!r} has no class subfolder')
  images, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(path, name)
    files = sorted(f for f in os.listdir(class_dir)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise ValueError(f'class folder {class_dir!r} has no image '
                       f'({", ".join(IMAGE_EXTENSIONS)})')
    for filename in files:
      images.append(_read_image(os.path.join(class_dir, filename), channels))
      labels.append(label)
  if len({image.shape for image in images}) == 1:
    images = np.stack(images)
  return images, np.asarray(labels, np.int32), class_names


def _read_image(path: str, channels: int = 1) -> np.ndarray:
  """Image file -> float32 [H, W, ch] in [0, 1], natural convention."""
  with open(path, 'rb') as f:
    return decode_image(f.read(), path, channels)


def decode_image(encoded: bytes, where: str, channels: int = 1) -> np.ndarray:
  """Encoded PNG/JPEG bytes -> float32 [H, W, channels] in [0, 1].

  Raises:
    ValueError: not an image, naming `where`.
  """
  try:
    image = tf.io.decode_image(encoded, channels=channels,
                               expand_animations=False)
  except tf.errors.InvalidArgumentError as e:
    raise ValueError(f'cannot decode image {where!r}: {e.message}') from e
  return image.numpy().astype(np.float32) / 255.0
