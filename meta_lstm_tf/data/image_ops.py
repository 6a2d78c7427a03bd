"""Image preprocessing shared by the episode pipeline and the exported model.

Omniglot PNGs (and images sent to the served model) follow the natural
convention: white background, dark strokes. The model sees the opposite:
float32 in [0, 1] with STROKES = 1 and background = 0, grayscale, resized to
image_size x image_size with area interpolation (an average over each output
pixel's footprint, so a 1-pixel stroke at 105x105 survives at 28x28 as a
grey value instead of vanishing as it can with nearest or bilinear sampling).

Only standard TensorFlow ops are used, so both functions can be traced into a
SavedModel served by TF Serving.

Shape glossary:
  B: batch of images; `...`: any leading axes.
  H, W: input height and width; C: input channels, 1 (gray) or 3 (RGB).
  S: output side, `image_size`.
"""

import tensorflow as tf


def _to_grayscale(images: tf.Tensor) -> tf.Tensor:
  """float [..., H, W, C] with C in {1, 3} -> float [..., H, W, 1]."""
  channels = images.shape[-1]
  if channels == 1:
    return images
  if channels == 3:
    return tf.image.rgb_to_grayscale(images)
  if channels is not None:
    raise ValueError(f'images have {channels} channels, expected 1 or 3')
  num_channels = tf.shape(images)[-1]
  tf.debugging.assert_equal(
      tf.logical_or(tf.equal(num_channels, 1), tf.equal(num_channels, 3)),
      True, message='images must have 1 or 3 channels')
  return tf.cond(tf.equal(num_channels, 3),
                 lambda: tf.image.rgb_to_grayscale(images),
                 lambda: images[..., :1])


def preprocess_images(images, image_size: int) -> tf.Tensor:
  """Natural images -> model inputs: gray, resized, [0, 1], strokes = 1.

  Args:
    images: uint8 [..., H, W, C] in 0..255 or float [..., H, W, C] in [0, 1],
      C in {1, 3}, white background and dark strokes; at least one leading
      (batch) axis.
    image_size: S, the output side.

  Returns:
    float32 [..., S, S, 1] in [0, 1], strokes 1, background 0.

  Raises:
    ValueError: unsupported dtype or channel count.
  """
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8 and not images.dtype.is_floating:
    raise ValueError(f'images have dtype {images.dtype.name}, expected uint8 '
                     'or float')
  # uint8 is scaled by 1/255; floats are only cast.
  images = tf.image.convert_image_dtype(images, tf.float32)
  gray = _to_grayscale(images)
  shape = tf.shape(gray)
  leading, spatial = shape[:-3], shape[-3:]
  flat = tf.reshape(gray, tf.concat([[-1], spatial], axis=0))
  resized = tf.image.resize(flat, [image_size, image_size], method='area')
  inverted = 1.0 - tf.clip_by_value(resized, 0.0, 1.0)
  result = tf.reshape(
      inverted, tf.concat([leading, [image_size, image_size, 1]], axis=0))
  if gray.shape.rank is not None:
    result.set_shape(gray.shape[:-3].concatenate([image_size, image_size, 1]))
  return result


def decode_images(encoded_strings, image_size: int) -> tf.Tensor:
  """Encoded PNG/JPEG/BMP/GIF bytes -> model inputs, as `preprocess_images`.

  Images may differ in size: each is decoded (first frame of a GIF) and
  resized on its own.

  Args:
    encoded_strings: string [B], encoded images, white background.
    image_size: S, the output side.

  Returns:
    float32 [B, S, S, 1] in [0, 1], strokes 1.
  """
  encoded_strings = tf.convert_to_tensor(encoded_strings, tf.string)

  def decode_one(encoded):
    # channels=1 decodes grayscale PNGs exactly and lets the codec convert
    # colour images.
    image = tf.io.decode_image(encoded, channels=1, expand_animations=False)
    return preprocess_images(image[tf.newaxis], image_size)[0]

  return tf.map_fn(
      decode_one, encoded_strings,
      fn_output_signature=tf.TensorSpec([image_size, image_size, 1],
                                        tf.float32))
