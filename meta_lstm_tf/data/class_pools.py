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
