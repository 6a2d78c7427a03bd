"""Image preprocessing shared by the episode pipeline and the exported model.

Omniglot PNGs (and images sent to a served Omniglot model) follow the natural
convention: white background, dark strokes. An Omniglot model sees the
opposite (`invert=True`): float32 in [0, 1] with STROKES = 1 and background =
0, grayscale, resized to image_size x image_size with area interpolation (an
average over each output pixel's footprint, so a 1-pixel stroke at 105x105
survives at 28x28 as a grey value instead of vanishing as it can with nearest
or bilinear sampling). Photographs (mini-ImageNet, image folders;
`invert=False`) are only converted to the model's channels (gray <-> RGB) and
resized the same way.

Only standard TensorFlow ops are used, so both functions can be traced into a
SavedModel served by TF Serving.

Shape glossary:
  B: batch of images; `...`: any leading axes.
  H, W: input height and width; C: input channels, 1 (gray) or 3 (RGB).
  S: output side, `image_size`.
"""

from typing import NamedTuple, Optional

import tensorflow as tf


def _to_channels(images: tf.Tensor, channels: int) -> tf.Tensor:
  """float [..., H, W, C] with C in {1, 3} -> float [..., H, W, channels]."""
  convert = (tf.image.rgb_to_grayscale if channels == 1 else
             tf.image.grayscale_to_rgb)
  have = images.shape[-1]
  if have == channels:
    return images
  if have in (1, 3):
    return convert(images)
  if have is not None:
    raise ValueError(f'images have {have} channels, expected 1 or 3')
  num_channels = tf.shape(images)[-1]
  tf.debugging.assert_equal(
      tf.logical_or(tf.equal(num_channels, 1), tf.equal(num_channels, 3)),
      True, message='images must have 1 or 3 channels')
  if channels == 1:
    return tf.cond(tf.equal(num_channels, 3),
                   lambda: tf.image.rgb_to_grayscale(images),
                   lambda: images[..., :1])
  # Broadcasting the first channel: RGB stays RGB, gray becomes 3 equal ones.
  return tf.cond(tf.equal(num_channels, 3), lambda: images,
                 lambda: tf.repeat(images[..., :1], 3, axis=-1))


def preprocess_images(images, image_size: int, channels: int = 1,
                      invert: bool = True) -> tf.Tensor:
  """Natural images -> model inputs: C channels, resized, [0, 1].

  Args:
    images: uint8 [..., H, W, C_in] in 0..255 or float [..., H, W, C_in] in
      [0, 1], C_in in {1, 3}; at least one leading (batch) axis. With
      `invert`: white background and dark strokes.
    image_size: S, the output side.
    channels: C, the model's channels: 1 (gray) or 3 (RGB); inputs are
      converted.
    invert: Omniglot's convention, strokes = 1 and background = 0.

  Returns:
    float32 [..., S, S, C] in [0, 1].

  Raises:
    ValueError: unsupported dtype or channel count.
  """
  if channels not in (1, 3):
    raise ValueError(f'channels={channels}: expected 1 or 3')
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8 and not images.dtype.is_floating:
    raise ValueError(f'images have dtype {images.dtype.name}, expected uint8 '
                     'or float')
  # uint8 is scaled by 1/255; floats are only cast.
  images = tf.image.convert_image_dtype(images, tf.float32)
  converted = _to_channels(images, channels)
  shape = tf.shape(converted)
  leading, spatial = shape[:-3], shape[-3:]
  flat = tf.reshape(converted, tf.concat([[-1], spatial], axis=0))
  resized = tf.clip_by_value(
      tf.image.resize(flat, [image_size, image_size], method='area'),
      0.0, 1.0)
  if invert:
    resized = 1.0 - resized
  result = tf.reshape(
      resized, tf.concat([leading, [image_size, image_size, channels]],
                         axis=0))
  if converted.shape.rank is not None:
    result.set_shape(converted.shape[:-3].concatenate(
        [image_size, image_size, channels]))
  return result


def decode_images(encoded_strings, image_size: int, channels: int = 1,
                  invert: bool = True) -> tf.Tensor:
  """Encoded PNG/JPEG/BMP/GIF bytes -> model inputs, as `preprocess_images`.

  Images may differ in size: each is decoded (first frame of a GIF) and
  resized on its own.

  Args:
    encoded_strings: string [B], encoded images (white background with
      `invert`).
    image_size: S, the output side.
    channels: C, 1 or 3: the codec converts gray <-> RGB.
    invert: as `preprocess_images`.

  Returns:
    float32 [B, S, S, C] in [0, 1].
  """
  encoded_strings = tf.convert_to_tensor(encoded_strings, tf.string)

  def decode_one(encoded):
    # channels=1 decodes grayscale PNGs exactly and lets the codec convert
    # colour images (and channels=3 gray ones).
    image = tf.io.decode_image(encoded, channels=channels,
                               expand_animations=False)
    return preprocess_images(image[tf.newaxis], image_size, channels,
                             invert)[0]

  return tf.map_fn(
      decode_one, encoded_strings,
      fn_output_signature=tf.TensorSpec([image_size, image_size, channels],
                                        tf.float32))


def to_model_inputs(images: tf.Tensor) -> tf.Tensor:
  """Pool images -> float32 learner inputs in [0, 1].

  Photograph pools are kept as uint8 (a quarter of float32's memory: all of
  mini-ImageNet at 84 x 84 is 1.3 GB instead of 5 GB) and scaled after the
  gather, so only an episode's images are ever float; float pools (Omniglot)
  pass through unchanged.
  """
  if images.dtype == tf.uint8:
    return tf.cast(images, tf.float32) * (1.0 / 255.0)
  return images


# `random_affine`'s default ranges: small enough that a character stays
# itself (Omniglot's own rotations by 90 degrees are separate classes).
AUGMENT_MAX_ROTATION_DEGREES = 10.0
AUGMENT_MAX_SCALE_CHANGE = 0.1  # Zoom in [0.9, 1.1].
AUGMENT_MAX_SHIFT_FRACTION = 0.1  # Of the image side, per axis.


class AffineRanges(NamedTuple):
  """`random_affine`'s ranges, each drawn uniformly per image: rotation in
  +-`rotation_degrees`, zoom in 1 +- `scale_change`, shift per axis in
  +-`shift_fraction` of the side, shear factors per axis in +-`shear`."""
  rotation_degrees: float = AUGMENT_MAX_ROTATION_DEGREES
  scale_change: float = AUGMENT_MAX_SCALE_CHANGE
  shift_fraction: float = AUGMENT_MAX_SHIFT_FRACTION
  shear: float = 0.0


def affine_transforms(angles: tf.Tensor, scales: tf.Tensor,
                      shifts: tf.Tensor, height: int,
                      width: int,
                      shears: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Output -> input pixel maps of rotations about the centre, zooms,
  shears and shifts, in the 8-number form of `ImageProjectiveTransformV3`.

  Args:
    angles: float32 [B], radians (counter-clockwise on screen).
    scales: float32 [B], zoom factors (2: twice as large).
    shifts: float32 [B, 2], (dx, dy) in pixels, applied after the zoom.
    height, width: image size.
    shears: float32 [B, 2] or None (none), shear factors (hx, hy): the
      sampling grid's x moves by hx * y and its y by hy * x (about the
      centre), before the rotation and the zoom.

  Returns:
    float32 [B, 8]: output (x, y) reads input (a0 x + a1 y + a2,
    b0 x + b1 y + b2).
  """
  cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
  cos, sin = tf.cos(angles) / scales, tf.sin(angles) / scales
  # input = M (output - centre - shift) + centre, M = R(angle) H / scale
  # with H = [[1, hx], [hy, 1]] (rotating the sampling grid by +angle
  # turns the image by -angle on screen, where y points down:
  # counter-clockwise).
  a0, a1, b0, b1 = cos, -sin, sin, cos
  if shears is not None:
    hx, hy = shears[:, 0], shears[:, 1]
    a0, a1, b0, b1 = (cos - sin * hy, cos * hx - sin,
                      sin + cos * hy, sin * hx + cos)
  ox = -cx - shifts[:, 0]
  oy = -cy - shifts[:, 1]
  zeros = tf.zeros_like(angles)
  return tf.stack([a0, a1, a0 * ox + a1 * oy + cx,
                   b0, b1, b0 * ox + b1 * oy + cy, zeros, zeros], axis=1)


def random_affine(images: tf.Tensor, seed: tf.Tensor,
                  ranges: AffineRanges = AffineRanges()) -> tf.Tensor:
  """Each image rotated, zoomed, sheared and shifted at random; a pure
  function of (images, seed, ranges).

  Args:
    images: float32 [B, H, W, ch].
    seed: int32 or int64 [2], stateless seed.
    ranges: the draws' ranges (`AffineRanges`; Koch et al. used shear 0.3).
      Each draw has its own seed, so changing one range leaves the others'
      draws as they were; shear 0 draws no shear.

  Returns:
    float32 [B, H, W, ch]; pixels from outside the image repeat the nearest
    edge pixel (Omniglot's background, 0, at its borders).
  """
  shape = tf.shape(images)
  batch = shape[0]
  height, width = images.shape[1], images.shape[2]
  angle_seed, scale_seed, shift_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=3, alg='philox'))
  max_angle = ranges.rotation_degrees * 3.141592653589793 / 180.0
  angles = tf.random.stateless_uniform([batch], angle_seed, -max_angle,
                                       max_angle, alg='philox')
  scales = tf.random.stateless_uniform(
      [batch], scale_seed, 1.0 - ranges.scale_change,
      1.0 + ranges.scale_change, alg='philox')
  side = tf.constant([width, height], tf.float32)
  shifts = tf.random.stateless_uniform(
      [batch, 2], shift_seed, -1.0, 1.0,
      alg='philox') * (ranges.shift_fraction * side)
  shears = None
  if ranges.shear:
    shears = tf.random.stateless_uniform(
        [batch, 2], tf.random.experimental.stateless_fold_in(
            seed, 3, alg='philox'), -ranges.shear, ranges.shear,
        alg='philox')
  transforms = affine_transforms(angles, scales, shifts, height, width,
                                 shears)
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=transforms,
      output_shape=tf.constant([height, width], tf.int32),
      fill_value=tf.constant(0.0, tf.float32), interpolation='BILINEAR',
      fill_mode='NEAREST')
