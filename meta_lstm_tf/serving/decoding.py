"""Bounded, named decoding of encoded serving inputs (PNG/JPEG bytes).

A compressed image can be tiny and decode to gigabytes (a blank PNG whose
header says 20,000 x 20,000 is a few hundred KB), and a corrupt one fails
inside TensorFlow's decoder with a message naming neither the input nor the
image. So, per input:

1. `checked_sizes` reads each image's height and width from its header,
   without decoding: for PNG the IHDR chunk (which must come first, right
   after the signature: its width and height are big-endian uint32 at byte
   offsets 16 and 20), for JPEG `tf.io.extract_jpeg_shape` (libjpeg's own
   header parser, the one the decoder uses). An image over
   `ServingLimits.max_image_height` / `max_image_width`, or with an
   unreadable header, fails with `InvalidArgument` naming it (e.g.
   `query_images[3]`), before anything is decoded.
2. `decode` decodes one image at a time and resizes it to the learner's
   side at once, so a request's peak memory is one decoded image of at most
   the limits, not the whole batch. An image the decoder rejects is named
   the same way.

TensorFlow cannot catch an op's error inside a graph; tf.data can skip the
elements its map function fails on (`ignore_errors`), which tells which
positions failed. Both steps therefore run as a sequential tf.data pipeline
inside the graph (standard ops, so TF Serving's C++ loader runs them), with
the optimizations that would parallelise it turned off.

Shape glossary: X images; I the learner's image side; ch its channels.
"""

import tensorflow as tf

from meta_lstm_tf.data import image_ops
from meta_lstm_tf.serving import validation

# The first PNG chunk as libpng requires it: length 13, type IHDR.
_PNG_IHDR = b'\x00\x00\x00\x0dIHDR'
# Signature, IHDR length and type, width, height, 5 more fields, CRC.
_PNG_HEADER_BYTES = 33
# How many failing positions a message lists.
_SHOWN = 10


def _sequential() -> tf.data.Options:
  """Options that run a pipeline exactly as written: one element at a time.

  Parallel map (`map_parallelization`, autotuning) would decode several
  images at once and multiply the peak memory.
  """
  options = tf.data.Options()
  options.deterministic = True
  options.autotune.enabled = False
  options.experimental_optimization.apply_default_optimizations = False
  options.experimental_optimization.map_parallelization = False
  options.experimental_optimization.inject_prefetch = False
  return options


def _map_one_at_a_time(fn, elements: tf.Tensor, spec: tf.TensorSpec):
  """Applies `fn` to each element in turn, skipping those it fails on.

  Args:
    fn: string scalar -> a tensor of `spec`.
    elements: string [X].
    spec: the static shape and dtype of `fn`'s output.

  Returns:
    (ok bool [X]: whether `fn` succeeded on each element, outputs
    `spec.dtype` [X, *spec.shape]: its results, zeros where it failed).
  """
  count = tf.size(elements)
  dataset = tf.data.Dataset.from_tensor_slices((tf.range(count), elements))
  dataset = dataset.map(lambda i, x: (i, fn(x))).ignore_errors()
  # A first element that cannot fail, so the single batch is never empty
  # (`get_single_element` fails on an empty dataset).
  first = tf.data.Dataset.from_tensors(
      (tf.constant(-1), tf.zeros(spec.shape, spec.dtype)))
  dataset = first.concatenate(dataset).batch(
      tf.cast(count, tf.int64) + 1).with_options(_sequential())
  positions, outputs = dataset.get_single_element()
  positions, outputs = positions[1:], outputs[1:]
  indices = positions[:, tf.newaxis]
  ok = tf.scatter_nd(indices, tf.ones_like(positions), [count]) > 0
  outputs = tf.scatter_nd(indices, outputs,
                          tf.concat([[count], spec.shape], axis=0))
  return ok, outputs


def _named(name: str, positions: tf.Tensor, details=None) -> tf.Tensor:
  """'name[i], name[j]' (each followed by its `details`) for the first
  `_SHOWN` positions, and how many there are in all if more."""
  parts = [f'{name}[', tf.strings.as_string(positions[:_SHOWN]), ']']
  if details is not None:
    parts += details(_SHOWN)
  text = tf.strings.reduce_join(tf.strings.join(parts), separator=', ')
  total = tf.size(positions)
  return tf.where(
      total > _SHOWN,
      tf.strings.join([text, ' (', tf.strings.as_string(total), ' in all)']),
      text)


def header_size(encoded: tf.Tensor) -> tf.Tensor:
  """int32 [2]: (height, width) from a PNG or JPEG header, nothing decoded.

  Fails (an op error) if the header is unreadable.
  """
  def png_size():
    check = tf.debugging.Assert(
        (tf.strings.length(encoded) >= _PNG_HEADER_BYTES) &
        tf.equal(tf.strings.substr(encoded, 8, 8), _PNG_IHDR),
        ['PNG without an IHDR chunk first'])
    with tf.control_dependencies([check]):
      width_height = tf.io.decode_raw(tf.strings.substr(encoded, 16, 8),
                                      tf.int32, little_endian=False)
    return tf.stack([width_height[1], width_height[0]])

  def jpeg_size():
    return tf.io.extract_jpeg_shape(encoded)[:2]

  is_png = tf.equal(tf.strings.substr(encoded, 0, 8),
                    validation.PNG_SIGNATURE)
  size = tf.cond(is_png, png_size, jpeg_size)
  # Zero, or (as int32) over 2**31 - 1: invalid in both formats.
  check = tf.debugging.Assert(tf.reduce_all(size > 0),
                              ['image header with a zero size'])
  return validation.gate(size, [check])


def checked_sizes(images: tf.Tensor, name: str,
                  limits: validation.ServingLimits) -> tf.Tensor:
  """Checks each encoded image's header: readable, within the size limits.

  Args:
    images: string [X] of PNG/JPEG bytes (`validation.validated_encoded`).
    name: the input's name, for messages.
    limits: the export's limits.

  Returns:
    `images`, computed only if every header is readable and within the
    limits.
  """
  readable, sizes = _map_one_at_a_time(header_size, images,
                                       tf.TensorSpec([2], tf.int32))
  readable_check = tf.debugging.Assert(
      tf.reduce_all(readable),
      [tf.strings.join([
          _named(name, tf.where(tf.logical_not(readable))[:, 0]),
          ': not a decodable PNG/JPEG (unreadable header)'])])
  sizes = validation.gate(sizes, [readable_check])
  height, width = limits.max_image_height, limits.max_image_width
  too_large = (sizes[:, 0] > height) | (sizes[:, 1] > width)
  positions = tf.where(too_large)[:, 0]
  shown = tf.gather(sizes, positions)
  size_check = tf.debugging.Assert(
      tf.logical_not(tf.reduce_any(too_large)),
      [tf.strings.join([
          _named(name, positions, lambda n: [
              ' is ', tf.strings.as_string(shown[:n, 0]), ' x ',
              tf.strings.as_string(shown[:n, 1])]),
          f': larger than the limit of {height} x {width} (height x width, '
          'as the image headers say; max_image_height, max_image_width, '
          'set at export)'])])
  return validation.gate(images, [readable_check, size_check])


def decode(images: tf.Tensor, name: str, image_size: int, channels: int,
           invert: bool) -> tf.Tensor:
  """Decodes and preprocesses encoded images one at a time.

  As `image_ops.decode_images` (the same decoder and preprocessing, so the
  learner sees what training fed it), but sequential, and an image the
  decoder rejects fails with `InvalidArgument` naming it.

  Args:
    images: string [X], headers already checked (`checked_sizes`).
    name: the input's name, for messages.
    image_size: I.
    channels: ch, 1 or 3: the codec converts gray <-> RGB.
    invert: as `image_ops.preprocess_images`.

  Returns:
    float32 [X, I, I, ch] in [0, 1].
  """
  def decode_one(encoded):
    # channels=1 decodes grayscale PNGs exactly and lets the codec convert
    # colour images (and channels=3 gray ones).
    image = tf.io.decode_image(encoded, channels=channels,
                               expand_animations=False)
    return image_ops.preprocess_images(image[tf.newaxis], image_size,
                                       channels, invert)[0]

  decoded, inputs = _map_one_at_a_time(
      decode_one, images,
      tf.TensorSpec([image_size, image_size, channels], tf.float32))
  check = tf.debugging.Assert(
      tf.reduce_all(decoded),
      [tf.strings.join([
          _named(name, tf.where(tf.logical_not(decoded))[:, 0]),
          ': not a decodable PNG/JPEG (corrupt or truncated image data)'])])
  return validation.gate(inputs, [check])
