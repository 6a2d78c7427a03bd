"""The decoded classes of the three meta-splits, whatever the data set.

Every data source (`omniglot.splits`, `photos.mini_imagenet`,
`photos.image_folder`, dispatched by `pools`) returns `ClassPools`; episodes
(`episodes`) are sampled from a `ClassPool`.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf


class ClassPool(NamedTuple):
  """The classes of one meta-split, decoded.

  Attributes:
    images: float32 [C, D, H, W, 1] in [0, 1], strokes 1 (Omniglot), or
      uint8 [C, D, H, W, ch] (photographs; `image_ops.to_model_inputs`
      scales what an episode gathers).
    class_names: C names, 'ALPHABET/characterNN', with '/rotDDD' appended
      when rotations are classes (Omniglot); the class folder or CSV label
      (photographs).
    alphabets: C alphabet names (Omniglot), None where classes have none.
    drawers: int32 [C, D], the drawer (0..D-1) of each drawing, each row a
      permutation; None when unknown.
    class_sizes: C images per class before every class was cut to the
      smallest's D (photograph folders), None when all had D; for messages.
  """
  images: tf.Tensor
  class_names: Tuple[str, ...]
  alphabets: Optional[Tuple[str, ...]] = None
  drawers: Optional[np.ndarray] = None
  class_sizes: Optional[Tuple[int, ...]] = None


class ClassPools(NamedTuple):
  """Disjoint class pools of the three meta-splits."""
  meta_train: ClassPool
  meta_valid: ClassPool
  meta_test: ClassPool


def merge(first: ClassPool, second: ClassPool) -> ClassPool:
  """One pool of both pools' classes, `first`'s then `second`'s (e.g. the
  meta-train and meta-valid classes, `TrainConfig.trainval`). Classes are
  cut to the smaller D images, as a folder's are; alphabets and drawers are
  kept where both pools have them.

  Raises:
    ValueError: the pools' images differ in shape or dtype, or pools with
      drawers differ in D (a cut would break each row's permutation).
  """
  shape_a, shape_b = first.images.shape, second.images.shape
  if (shape_a[2:] != shape_b[2:] or
      first.images.dtype != second.images.dtype):
    raise ValueError(
        f'cannot merge pools of images {shape_a[2:]} {first.images.dtype} '
        f'and {shape_b[2:]} {second.images.dtype}')
  depth = min(shape_a[1], shape_b[1])

  def both(field):
    return (getattr(first, field) is not None and
            getattr(second, field) is not None)

  drawers = None
  if both('drawers'):
    if shape_a[1] != shape_b[1]:
      raise ValueError(f'cannot merge pools with drawers and {shape_a[1]} '
                       f'and {shape_b[1]} images per class')
    drawers = np.concatenate([first.drawers, second.drawers])
  sizes = None
  if first.class_sizes or second.class_sizes or shape_a[1] != shape_b[1]:
    sizes = tuple(first.class_sizes or (shape_a[1],) * shape_a[0]) + tuple(
        second.class_sizes or (shape_b[1],) * shape_b[0])
  return ClassPool(
      images=tf.concat([first.images[:, :depth], second.images[:, :depth]],
                       axis=0),
      class_names=tuple(first.class_names) + tuple(second.class_names),
      alphabets=(tuple(first.alphabets) + tuple(second.alphabets)
                 if both('alphabets') else None),
      drawers=drawers, class_sizes=sizes)
