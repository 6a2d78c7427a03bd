"""In-graph validation of serving inputs: a bad request fails with
`InvalidArgument` naming the input, and the model keeps serving.

Every check that bounds the cost of a request (counts, image sizes) runs
before anything reads pixel values, decodes an image or adapts the learner;
the limits are fixed at export (`ServingLimits`) and recorded in the export's
metadata.

Shape glossary: S support images, Q query images, H, W, C image height,
width and channels, N ways.
"""

import dataclasses
from typing import Dict, Sequence

import tensorflow as tf

# The signatures' input specs. Their ranks are declared, so that TF
# Serving's model metadata says what to send ([-1, -1, -1, -1] float images,
# [-1] strings and labels); TF Serving does not hold requests to them, so
# ranks, sizes, counts and values are all checked in the graph.
FLOAT_IMAGES = tf.TensorSpec([None, None, None, None], tf.float32)
ENCODED_IMAGES = tf.TensorSpec([None], tf.string)
LABELS = tf.TensorSpec([None], tf.int32)

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SIGNATURE = b'\xff\xd8\xff'

# Why the checks look the way they do: Grappler infers shapes backwards from
# consumers (a conv demands rank 4, so an unknown-rank input "is" rank 4),
# folds `Rank(x)` with that guess and drops the now "always true" assertion;
# the conv then runs on a rank-3 tensor (with oneDNN a CHECK failure that
# kills the server). So (1) shapes and ranks are checked on `tf.shape(x)`
# padded to a fixed length, never with `tf.rank` / `assert_rank`; (2) what
# the model computes with is `reshape(x, padded_shape)`, whose static rank
# comes from the shape vector's length, not from `x`; (3) nothing is computed
# from the raw input outside the checks (values are checked on the flattened
# tensor), and everything downstream is gated on the checks; (4) the rank
# the signature declares is hidden from the checks (`_checked_shape`):
# Grappler trusts it and would fold the rank check away, while TF Serving
# (and a loaded SavedModel's signature) feeds whatever a request holds.


class LimitError(ValueError):
  """A bad `ServingLimits` field: `field`, its `value`, the `requirement`."""

  def __init__(self, field: str, value, requirement: str):
    super().__init__(f'{field}={value!r}: {requirement}')
    self.field, self.value, self.requirement = field, value, requirement


@dataclasses.dataclass(frozen=True)
class ServingLimits:
  """The largest request an export accepts; fixed when it is written.

  They bound what one request can make the server allocate and compute:
  counts bound the adaptation's batch, sizes bound each decoded image (an
  encoded image's size is read from its header, so a small file that
  decompresses to a huge image is refused before it is decoded). The
  defaults leave room above the largest standard episodes (20-way 5-shot
  is 100 support images, 20-way with 15 queries per class 300 queries;
  Omniglot is 105 x 105, mini-ImageNet 84 x 84) while one decoded
  1024 x 1024 RGB image stays at 12 MiB as float32.

  Attributes:
    max_support_images: S at most.
    max_query_images: Q at most (and the adapted learner's images).
    max_image_height: H at most, of float images and of encoded ones as
      their PNG/JPEG headers say.
    max_image_width: W at most, likewise.
  """
  max_support_images: int = 500
  max_query_images: int = 1000
  max_image_height: int = 1024
  max_image_width: int = 1024

  def validate(self) -> 'ServingLimits':
    """Returns self; raises `LimitError` naming a bad field."""
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      # The graph compares them with int32 shapes.
      if (not isinstance(value, int) or isinstance(value, bool) or
          not 0 < value < 2**31):
        raise LimitError(field.name, value,
                         'must be an integer in [1, 2**31 - 1]')
    return self

  def to_dict(self) -> Dict[str, int]:
    return dataclasses.asdict(self)


def gate(tensor: tf.Tensor, checks: Sequence) -> tf.Tensor:
  """`tensor`, computed only after `checks` passed."""
  with tf.control_dependencies(checks):
    return tf.identity(tensor)


def after_one_another(*tensors: tf.Tensor):
  """Each of `tensors`, computed only once all of them are.

  Used so that no input is decoded or adapted to before every input's
  checks have passed, and the error a client sees does not depend on which
  check ran first.
  """
  return tuple(gate(t, [u for u in tensors if u is not t]) for t in tensors)


def _checked_shape(tensor: tf.Tensor, rank: int, name: str, expected: str):
  """Asserts the rank of `tensor`; returns (gated tensor, shape int32 [rank]).

  The returned shape is `tf.shape(tensor)` padded with ones (or cut) to
  length `rank`, so it has a static length even for a bad request.
  """
  # An identity whose output's static shape is unknown: the declared rank
  # of a signature input must not let Grappler drop the check.
  tensor = tf.compat.v1.placeholder_with_default(tensor, shape=None)
  shape = tf.shape(tensor)
  actual_rank = tf.size(shape)
  check = tf.debugging.Assert(
      tf.equal(actual_rank, rank),
      [f'{name}: expected {expected}; got a tensor of shape', shape],
      summarize=8)
  tensor = gate(tensor, [check])
  padded = tf.concat([gate(shape, [check]), tf.ones([rank], tf.int32)],
                     axis=0)
  # Stacked scalars: a length known to every shape inference.
  return tensor, tf.stack([padded[i] for i in range(rank)])


def _count_checks(count: tf.Tensor, name: str, limits: ServingLimits,
                  count_limit: str):
  """Asserts 0 < count <= the limit named `count_limit`."""
  maximum = getattr(limits, count_limit)
  return [
      tf.debugging.Assert(
          count > 0, [f'{name}: is empty; send at least one image']),
      tf.debugging.Assert(
          count <= maximum,
          [f'{name}: too many images; the limit is {maximum} '
           f'({count_limit}, set at export); got', count]),
  ]


def validated_images(images: tf.Tensor, name: str,
                     limits: ServingLimits = ServingLimits(),
                     count_limit: str = 'max_query_images') -> tf.Tensor:
  """Checks float images [X, H, W, C].

  First the shape: rank 4, 0 < X <= `limits.<count_limit>`, 0 < H, W within
  the limits, C in {1, 3}; then, only if it passed, the values: finite,
  then in [0, 1].

  Returns:
    `images` reshaped to static rank 4, computed only if the checks pass.
  """
  images, shape = _checked_shape(
      images, 4, name, 'a float32 batch of images [num_images, height, width, '
      'channels]')
  height, width = limits.max_image_height, limits.max_image_width
  shape_checks = _count_checks(shape[0], name, limits, count_limit) + [
      tf.debugging.Assert(
          (shape[1] > 0) & (shape[2] > 0),
          [f'{name}: images have zero height or width; shape', shape],
          summarize=4),
      tf.debugging.Assert(
          (shape[1] <= height) & (shape[2] <= width),
          [f'{name}: images are larger than the limit of {height} x {width} '
           '(height x width; max_image_height, max_image_width, set at '
           'export); got shape', shape], summarize=4),
      tf.debugging.Assert(
          tf.logical_or(tf.equal(shape[3], 1), tf.equal(shape[3], 3)),
          [f'{name}: images must have 1 (gray) or 3 (RGB) channels; got',
           shape[3]]),
  ]
  # Values are read only once the shape is known to be within the limits.
  images = tf.reshape(gate(images, shape_checks), gate(shape, shape_checks))
  finite = tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3])
  finite_check = tf.debugging.Assert(
      tf.reduce_all(finite),
      [f'{name}: pixel values must be finite; NaN or Inf in images at '
       'positions', tf.where(tf.logical_not(finite))[:, 0]], summarize=16)
  # After the finite check, so NaN gets its own message, not the range's.
  values = tf.reshape(gate(images, [finite_check]), [-1])
  low, high = tf.reduce_min(values), tf.reduce_max(values)
  range_check = tf.debugging.Assert(
      (low >= 0.0) & (high <= 1.0),
      [f'{name}: pixel values must be in [0, 1] (white background, '
       'dark strokes); got min and max', low, high])
  return gate(images, [finite_check, range_check])


def validated_encoded(images: tf.Tensor, name: str,
                      limits: ServingLimits = ServingLimits(),
                      count_limit: str = 'max_query_images') -> tf.Tensor:
  """Checks encoded images string [X]: rank 1, 0 < X <= the count limit,
  PNG or JPEG signatures (image sizes: `decoding.checked_sizes`)."""
  images, shape = _checked_shape(
      images, 1, name, 'a vector of encoded images (PNG/JPEG bytes)')
  count_checks = _count_checks(shape[0], name, limits, count_limit)
  values = tf.reshape(gate(images, count_checks), [-1])
  is_image = is_image_file(values)
  signature_check = tf.debugging.Assert(
      tf.reduce_all(is_image),
      [f'{name}: every entry must be PNG or JPEG file bytes; not at '
       'positions', tf.where(tf.logical_not(is_image))[:, 0]], summarize=16)
  return tf.reshape(gate(values, [signature_check]),
                    gate(shape, count_checks))


def is_image_file(encoded: tf.Tensor) -> tf.Tensor:
  """bool [X]: whether each string starts like a PNG or JPEG file."""
  # Padded so that substr never reads past the end of a short string.
  padded = tf.strings.join([encoded, b'\0' * 8])
  return ((tf.strings.substr(padded, 0, 8) == PNG_SIGNATURE) |
          (tf.strings.substr(padded, 0, 3) == JPEG_SIGNATURE))


def validated_labels(labels: tf.Tensor, num_support: tf.Tensor,
                     num_ways: int) -> tf.Tensor:
  """Checks support_labels int32 [S]: rank 1, one per image, in [0, N), and
  every class 0..N-1 present.

  A class without support images would still get a probability (from the
  learner's initial parameters alone), an answer the support set does not
  justify; so such a request is refused.
  """
  labels, shape = _checked_shape(
      labels, 1, 'support_labels',
      'an int32 vector [S], one label per support image')
  length_check = tf.debugging.Assert(
      tf.equal(shape[0], num_support),
      ['support_labels: need one label per image of support_images; got '
       'this many labels and images:', shape[0], num_support])
  values = tf.reshape(gate(labels, [length_check]), [-1])
  range_check = tf.debugging.Assert(
      tf.reduce_all((values >= 0) & (values < num_ways)),
      [f'support_labels: labels must be in [0, {num_ways}) (the model is '
       f'{num_ways}-way); got', values], summarize=64)
  # Counted only once in range: bincount fails on negative labels.
  counts = tf.math.bincount(gate(values, [range_check]), minlength=num_ways,
                            maxlength=num_ways)
  classes_check = tf.debugging.Assert(
      tf.reduce_all(counts > 0),
      [f'support_labels: every class 0..{num_ways - 1} needs at least one '
       f'support image (the model is {num_ways}-way); missing classes',
       tf.where(tf.equal(counts, 0))[:, 0]], summarize=num_ways)
  return tf.reshape(gate(values, [range_check, classes_check]),
                    gate(shape, [length_check]))
