"""In-graph validation of serving inputs: a bad request fails with
`InvalidArgument` naming the input, and the model keeps serving.

Shape glossary: S support images, Q query images, H, W, C image height,
width and channels.
"""

import tensorflow as tf

# The signatures' input specs: any shape, checked in the graph.
FLOAT_IMAGES = tf.TensorSpec(None, tf.float32)
ENCODED_IMAGES = tf.TensorSpec(None, tf.string)
LABELS = tf.TensorSpec(None, tf.int32)

# Why the checks look the way they do: Grappler infers shapes backwards from
# consumers (a conv demands rank 4, so an unknown-rank input "is" rank 4),
# folds `Rank(x)` with that guess and drops the now "always true" assertion;
# the conv then runs on a rank-3 tensor (with oneDNN a CHECK failure that
# kills the server). So (1) shapes and ranks are checked on `tf.shape(x)`
# padded to a fixed length, never with `tf.rank` / `assert_rank`; (2) what
# the model computes with is `reshape(x, padded_shape)`, whose static rank
# comes from the shape vector's length, not from `x`; (3) nothing is computed
# from the raw input outside the checks (values are checked on the flattened
# tensor), and everything downstream is gated on the checks.


def _gate(tensor: tf.Tensor, checks) -> tf.Tensor:
  """`tensor`, computed only after `checks` passed."""
  with tf.control_dependencies(checks):
    return tf.identity(tensor)


def _checked_shape(tensor: tf.Tensor, rank: int, name: str, expected: str):
  """Asserts the rank of `tensor`; returns (gated tensor, shape int32 [rank]).

  The returned shape is `tf.shape(tensor)` padded with ones (or cut) to
  length `rank`, so it has a static length even for a bad request.
  """
  shape = tf.shape(tensor)
  actual_rank = tf.size(shape)
  check = tf.debugging.Assert(
      tf.equal(actual_rank, rank),
      [f'{name}: expected {expected}; got a tensor of shape', shape])
  tensor = _gate(tensor, [check])
  padded = tf.concat([_gate(shape, [check]), tf.ones([rank], tf.int32)],
                     axis=0)
  # Stacked scalars: a length known to every shape inference.
  return tensor, tf.stack([padded[i] for i in range(rank)])


def validated_images(images: tf.Tensor, name: str) -> tf.Tensor:
  """Checks float images [X, H, W, C]: rank, not empty, C in {1, 3}, [0, 1].

  Returns:
    `images` reshaped to static rank 4, computed only if the checks pass.
  """
  images, shape = _checked_shape(
      images, 4, name, 'a float32 batch of images [num_images, height, width, '
      'channels]')
  values = tf.reshape(images, [-1])
  # Empty images give +inf / -inf, which pass; NaN fails.
  low, high = tf.reduce_min(values), tf.reduce_max(values)
  checks = [
      tf.debugging.Assert(
          shape[0] > 0, [f'{name}: is empty; send at least one image']),
      tf.debugging.Assert(
          shape[1] * shape[2] > 0,
          [f'{name}: images have zero height or width; shape', shape]),
      tf.debugging.Assert(
          tf.logical_or(tf.equal(shape[3], 1), tf.equal(shape[3], 3)),
          [f'{name}: images must have 1 (gray) or 3 (RGB) channels; got',
           shape[3]]),
      tf.debugging.Assert(
          (low >= 0.0) & (high <= 1.0),
          [f'{name}: pixel values must be in [0, 1] (white background, '
           'dark strokes); got min and max', low, high]),
  ]
  return tf.reshape(_gate(images, checks), _gate(shape, checks))


def validated_encoded(images: tf.Tensor, name: str) -> tf.Tensor:
  """Checks encoded images string [X]: rank 1, not empty."""
  images, shape = _checked_shape(
      images, 1, name, 'a vector of encoded images (PNG/JPEG bytes)')
  values = tf.reshape(images, [-1])
  checks = [
      tf.debugging.Assert(
          shape[0] > 0, [f'{name}: is empty; send at least one image']),
      tf.debugging.Assert(
          tf.reduce_all(is_image_file(values)),
          [f'{name}: every entry must be PNG or JPEG file bytes; not at '
           'positions',
           tf.where(tf.logical_not(is_image_file(values)))[:, 0]]),
  ]
  return tf.reshape(_gate(images, checks), _gate(shape, checks))


def is_image_file(encoded: tf.Tensor) -> tf.Tensor:
  """bool [X]: whether each string starts like a PNG or JPEG file."""
  # Padded so that substr never reads past the end of a short string.
  padded = tf.strings.join([encoded, b'\0' * 8])
  return ((tf.strings.substr(padded, 0, 8) == b'\x89PNG\r\n\x1a\n') |
          (tf.strings.substr(padded, 0, 3) == b'\xff\xd8\xff'))


def validated_labels(labels: tf.Tensor, num_support: tf.Tensor,
                      num_ways: int) -> tf.Tensor:
  """Checks support_labels int32 [S]: rank 1, one per image, in [0, N)."""
  labels, shape = _checked_shape(
      labels, 1, 'support_labels',
      'an int32 vector [S], one label per support image')
  values = tf.reshape(labels, [-1])
  checks = [
      tf.debugging.Assert(
          tf.equal(shape[0], num_support),
          ['support_labels: need one label per image of support_images; got '
           'this many labels and images:', shape[0], num_support]),
      tf.debugging.Assert(
          tf.reduce_all((values >= 0) & (values < num_ways)),
          [f'support_labels: labels must be in [0, {num_ways}) (the model is '
           f'{num_ways}-way); got', values], summarize=64),
  ]
  return tf.reshape(_gate(labels, checks), _gate(shape, checks))
