"""Tests for meta_lstm_tf.data.image_ops."""

import io

from absl.testing import parameterized
import numpy as np
from PIL import Image
import tensorflow as tf

from meta_lstm_tf.data import image_ops


def _stroke_image(size=105, channels=1):
  """uint8 [size, size, channels]: white background, a 1-pixel black line."""
  image = np.full((size, size, channels), 255, np.uint8)
  image[size // 2, 10:size - 10, :] = 0
  return image


def _encode(array, fmt='PNG'):
  buffer = io.BytesIO()
  Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(
      buffer, format=fmt)
  return buffer.getvalue()


class PreprocessImagesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(1, 3)
  def test_strokes_are_one_background_zero(self, channels):
    images = np.stack([_stroke_image(channels=channels)] * 2)
    out = image_ops.preprocess_images(images, 28)
    self.assertEqual(out.dtype, tf.float32)
    self.assertEqual(out.shape, [2, 28, 28, 1])
    out = out.numpy()
    self.assertAllClose(out[:, 0, :, :], np.zeros((2, 28, 1)), atol=1e-3)
    # A 1-pixel line covers 1/3.75 of an output pixel's footprint.
    self.assertGreater(out.max(), 0.1)
    self.assertBetween(out.min(), 0.0, 1.0)
    self.assertLessEqual(out.max(), 1.0)

  def test_float_input_matches_uint8(self):
    images = np.stack([_stroke_image()])
    self.assertAllClose(
        image_ops.preprocess_images(images, 28),
        image_ops.preprocess_images(images.astype(np.float32) / 255.0, 28))

  def test_rgb_matches_gray(self):
    gray = np.stack([_stroke_image(channels=1)])
    rgb = np.repeat(gray, 3, axis=-1)
    self.assertAllClose(image_ops.preprocess_images(gray, 28),
                        image_ops.preprocess_images(rgb, 28), atol=1e-3)

  def test_same_size_is_only_inverted(self):
    images = np.random.RandomState(0).rand(3, 28, 28, 1).astype(np.float32)
    self.assertAllClose(image_ops.preprocess_images(images, 28), 1.0 - images)

  def test_area_resize_averages(self):
    image = np.zeros((1, 4, 4, 1), np.float32)  # All black: all strokes.
    image[0, :2, :2, 0] = 1.0  # One white quadrant.
    self.assertAllClose(
        image_ops.preprocess_images(image, 2)[0, :, :, 0], [[0, 1], [1, 1]])

  def test_leading_axes_are_kept(self):
    images = np.zeros((2, 3, 105, 105, 1), np.uint8)
    self.assertEqual(image_ops.preprocess_images(images, 28).shape,
                     [2, 3, 28, 28, 1])

  @parameterized.parameters(1, 3)
  def test_unknown_channels_in_graph(self, channels):
    fn = tf.function(
        lambda x: image_ops.preprocess_images(x, 28),
        input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8)])
    images = np.stack([_stroke_image(channels=channels)])
    self.assertAllClose(fn(images), image_ops.preprocess_images(images, 28),
                        atol=1e-3)

  def test_bad_channels_raise(self):
    with self.assertRaisesRegex(ValueError, '4 channels'):
      image_ops.preprocess_images(np.zeros((1, 8, 8, 4), np.uint8), 4)

  def test_bad_dtype_raises(self):
    with self.assertRaisesRegex(ValueError, 'int32'):
      image_ops.preprocess_images(np.zeros((1, 8, 8, 1), np.int32), 4)


class DecodeImagesTest(tf.test.TestCase, parameterized.TestCase):

  def test_png_matches_preprocess(self):
    gray = _stroke_image()
    out = image_ops.decode_images([_encode(gray), _encode(gray[::-1])], 28)
    self.assertEqual(out.shape, [2, 28, 28, 1])
    self.assertAllClose(out, image_ops.preprocess_images(
        np.stack([gray, gray[::-1]]), 28))

  def test_mixed_sizes_and_formats(self):
    small = _stroke_image(size=60, channels=3)
    big = _stroke_image(size=105, channels=1)
    out = image_ops.decode_images(
        [_encode(small, 'JPEG'), _encode(big, 'PNG')], 28).numpy()
    self.assertEqual(out.shape, (2, 28, 28, 1))
    self.assertLess(out[:, 0].max(), 0.05)  # Background row (JPEG noise).
    self.assertGreater(out.max(axis=(1, 2, 3)).min(), 0.1)

  def test_one_bit_png_as_omniglot(self):
    image = Image.fromarray(_stroke_image().squeeze(-1)).convert('1')
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    out = image_ops.decode_images([buffer.getvalue()], 105).numpy()
    self.assertCountEqual(np.unique(out), [0.0, 1.0])

  def test_in_tf_function(self):
    fn = tf.function(lambda s: image_ops.decode_images(s, 28),
                     input_signature=[tf.TensorSpec([None], tf.string)])
    self.assertEqual(fn(tf.constant([_encode(_stroke_image())])).shape,
                     [1, 28, 28, 1])



class PhotographTest(tf.test.TestCase, parameterized.TestCase):
  """invert=False, channels=3: photographs (mini-ImageNet, image folders)."""

  def test_rgb_is_kept_and_not_inverted(self):
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), np.uint8)
    out = image_ops.preprocess_images(images, 8, channels=3, invert=False)
    self.assertEqual(out.shape, [2, 8, 8, 3])
    self.assertAllClose(out, images / 255.0, atol=1e-6)

  @parameterized.parameters(None, 1)
  def test_gray_becomes_three_equal_channels(self, static_channels):
    gray = np.random.default_rng(1).random((1, 6, 6, 1)).astype(np.float32)
    spec = tf.TensorSpec([None, None, None, static_channels], tf.float32)
    fn = tf.function(lambda x: image_ops.preprocess_images(
        x, 6, channels=3, invert=False), input_signature=[spec])
    out = fn(gray)
    self.assertAllClose(out, np.repeat(gray, 3, axis=-1), atol=1e-6)

  def test_encoded_gray_png_decodes_to_rgb(self):
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16
    encoded = tf.io.encode_png(gray)
    out = image_ops.decode_images([encoded], 4, channels=3, invert=False)
    self.assertAllClose(out[0], np.repeat(gray, 3, -1) / 255.0, atol=1e-6)

  def test_to_model_inputs_scales_uint8_only(self):
    self.assertAllClose(image_ops.to_model_inputs(
        tf.constant([0, 255], tf.uint8)), [0.0, 1.0])
    floats = tf.constant([0.25])
    self.assertIs(image_ops.to_model_inputs(floats), floats)


if __name__ == '__main__':
  tf.test.main()


def _dot(side=9, row=4, col=4, batch=1):
  images = np.zeros((batch, side, side, 1), np.float32)
  images[:, row, col, 0] = 1.0
  return images


def _warp(images, angles, scales, shifts, shears=None):
  side = images.shape[1]
  transforms = image_ops.affine_transforms(
      tf.constant(angles, tf.float32), tf.constant(scales, tf.float32),
      tf.constant(shifts, tf.float32), side, side,
      None if shears is None else tf.constant(shears, tf.float32))
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=tf.constant(images), transforms=transforms,
      output_shape=tf.constant([side, side]), fill_value=0.0,
      interpolation='BILINEAR', fill_mode='CONSTANT').numpy()


class AffineTest(tf.test.TestCase):

  def test_identity(self):
    images = np.random.default_rng(0).random((2, 9, 9, 1), np.float32)
    self.assertAllClose(_warp(images, [0, 0], [1, 1], [[0, 0], [0, 0]]),
                        images)

  def test_shift_moves_by_dx_dy(self):
    warped = _warp(_dot(), [0], [1], [[2, -1]])
    expected = _dot(row=3, col=6)
    self.assertAllClose(warped, expected)

  def test_quarter_turn_is_counter_clockwise(self):
    image = _dot(row=1, col=4)  # Above the centre.
    warped = _warp(image, [np.pi / 2], [1], [[0, 0]])
    # np.rot90 turns counter-clockwise on screen: the dot goes left.
    self.assertAllClose(warped[0, ..., 0], np.rot90(image[0, ..., 0]),
                        atol=1e-5)
    self.assertAllClose(warped, _dot(row=4, col=1), atol=1e-5)

  def test_zoom_about_the_centre(self):
    warped = _warp(_dot(row=4, col=6), [0], [2], [[0, 0]])
    # 2 pixels right of the centre -> 4 pixels right.
    self.assertAlmostEqual(float(warped[0, 4, 8, 0]), 1.0, places=5)
    self.assertAlmostEqual(float(warped[0, 4, 4, 0]), 0.0, places=5)

  def test_shear_about_the_centre(self):
    # The sampling grid's x moves by hx * (y - centre): a dot 2 rows below
    # the centre moves left by hx * 2 = 1 pixel; one on the centre row stays.
    self.assertAllClose(_warp(_dot(row=6, col=4), [0], [1], [[0, 0]],
                              [[0.5, 0]]), _dot(row=6, col=3), atol=1e-5)
    self.assertAllClose(_warp(_dot(row=4, col=6), [0], [1], [[0, 0]],
                              [[0.5, 0]]), _dot(row=4, col=6), atol=1e-5)
    # And y by hy * (x - centre): 2 columns right of it, up by 1.
    self.assertAllClose(_warp(_dot(row=4, col=6), [0], [1], [[0, 0]],
                              [[0, 0.5]]), _dot(row=3, col=6), atol=1e-5)
    # No shear is the transform without one.
    args = ([0.3], [1.1], [[1.0, -2.0]])
    self.assertAllClose(_warp(_dot(row=2, col=5), *args, [[0, 0]]),
                        _warp(_dot(row=2, col=5), *args))

  def test_transform_against_numpy(self):
    # input = R(angle) H (output - centre - shift) / scale + centre.
    angle, scale, shift, shear = 0.4, 1.3, (1.5, -0.5), (0.2, -0.3)
    transform = image_ops.affine_transforms(
        tf.constant([angle]), tf.constant([scale]), tf.constant([shift]),
        9, 11, tf.constant([shear])).numpy()[0]
    rotation = np.array([[np.cos(angle), -np.sin(angle)],
                         [np.sin(angle), np.cos(angle)]])
    matrix = rotation @ np.array([[1, shear[0]], [shear[1], 1]]) / scale
    centre = np.array([(11 - 1) / 2, (9 - 1) / 2])
    for point in ([0.0, 0.0], [3.0, 7.0], [10.0, 2.5]):
      want = matrix @ (np.array(point) - centre - shift) + centre
      got = transform[:6].reshape(2, 3) @ np.array(point + [1.0])
      self.assertAllClose(got, want, atol=1e-5)

  def test_random_shear(self):
    images = tf.constant(np.random.default_rng(2).random((8, 28, 28, 1),
                                                         np.float32))
    seed = tf.constant([4, 5], tf.int64)
    plain = image_ops.random_affine(images, seed)
    shear = image_ops.AffineRanges(shear=0.3)
    sheared = image_ops.random_affine(images, seed, shear)
    self.assertAllEqual(plain, image_ops.random_affine(
        images, seed, image_ops.AffineRanges(shear=0.0)))
    self.assertAllEqual(sheared, image_ops.random_affine(images, seed, shear))
    self.assertNotAllClose(plain, sheared)
    self.assertGreaterEqual(float(tf.reduce_min(sheared)), 0.0)
    self.assertLessEqual(float(tf.reduce_max(sheared)), 1.0)
    # A horizontal bar through the centre tilts: its rows spread by up to
    # max_shear * half its length, never more.
    bar = np.zeros((300, 29, 29, 1), np.float32)
    bar[:, 14, 4:25, 0] = 1.0
    warped = image_ops.random_affine(
        tf.constant(bar), tf.constant([0, 9], tf.int64),
        image_ops.AffineRanges(shear=0.3))
    rows = np.indices((29, 29))[0]
    # Slope of the bar's centre line, from its left and right halves.
    left, right = warped[:, :, 5:12, 0].numpy(), warped[:, :, 17:24, 0].numpy()
    row_of = lambda part: ((part * rows[:, :7]).sum(axis=(1, 2)) /
                           part.sum(axis=(1, 2)))
    slope = (row_of(right) - row_of(left)) / 12.0
    # Rotation (<= 10 degrees) and shear (<= 0.3) together.
    bound = np.tan(np.radians(10)) + 0.3 + 0.05
    self.assertLessEqual(np.abs(slope).max(), bound)
    self.assertGreater(np.abs(slope).max(), np.tan(np.radians(10)))

  def test_random_affine_is_a_function_of_its_seed(self):
    images = tf.constant(np.random.default_rng(1).random((6, 28, 28, 1),
                                                         np.float32))
    first = image_ops.random_affine(images, tf.constant([1, 2], tf.int64))
    again = image_ops.random_affine(images, tf.constant([1, 2], tf.int64))
    other = image_ops.random_affine(images, tf.constant([1, 3], tf.int64))
    self.assertEqual(first.shape, images.shape)
    self.assertAllEqual(first, again)
    self.assertNotAllClose(first, other)
    # Every image gets its own transform.
    per_image = [float(tf.reduce_max(tf.abs(first[i] - images[i])))
                 for i in range(6)]
    self.assertTrue(all(d > 0 for d in per_image))
    self.assertLen(set(np.round(per_image, 6)), 6)
    # Bilinear mixing of pixels in [0, 1] stays in [0, 1].
    self.assertGreaterEqual(float(tf.reduce_min(first)), 0.0)
    self.assertLessEqual(float(tf.reduce_max(first)), 1.0)

  def test_random_affine_ranges(self):
    # A centred dot stays within the shift range of the centre.
    side = 28
    images = np.zeros((200, side, side, 1), np.float32)
    images[:, 13:15, 13:15, 0] = 1.0
    warped = image_ops.random_affine(tf.constant(images),
                                     tf.constant([0, 7], tf.int64)).numpy()
    rows, cols = np.indices((side, side))
    mass = warped[..., 0].sum(axis=(1, 2))
    centre_row = (warped[..., 0] * rows).sum(axis=(1, 2)) / mass
    centre_col = (warped[..., 0] * cols).sum(axis=(1, 2)) / mass
    max_shift = image_ops.AUGMENT_MAX_SHIFT_FRACTION * side
    self.assertLessEqual(np.abs(centre_row - 13.5).max(), max_shift + 0.05)
    self.assertLessEqual(np.abs(centre_col - 13.5).max(), max_shift + 0.05)
    # And uses most of it.
    self.assertGreater(np.abs(centre_col - 13.5).max(), 0.8 * max_shift)
    # Zoom changes the dot's mass by the square of the scale.
    # (bilinear sampling keeps it only roughly).
    low = (1 - image_ops.AUGMENT_MAX_SCALE_CHANGE) ** 2 * 4 - 0.15
    high = (1 + image_ops.AUGMENT_MAX_SCALE_CHANGE) ** 2 * 4 + 0.15
    self.assertTrue(np.all((mass > low) & (mass < high)))
    self.assertGreater(mass.max() - mass.min(), 1.0)

  def test_random_affine_ranges_are_its_arguments(self):
    images = tf.constant(np.random.default_rng(3).random((16, 28, 28, 1),
                                                         np.float32))
    seed = tf.constant([2, 8], tf.int64)
    # All ranges 0: every image maps onto itself.
    self.assertAllClose(
        images, image_ops.random_affine(
            images, seed, image_ops.AffineRanges(0.0, 0.0, 0.0, 0.0)),
        atol=1e-5)
    # The defaults are the module's constants, shear off.
    self.assertAllEqual(
        image_ops.random_affine(images, seed),
        image_ops.random_affine(images, seed, image_ops.AffineRanges(
            image_ops.AUGMENT_MAX_ROTATION_DEGREES,
            image_ops.AUGMENT_MAX_SCALE_CHANGE,
            image_ops.AUGMENT_MAX_SHIFT_FRACTION, 0.0)))
    side = 28

    def warp_centred_square(width, ranges):
      """200 copies of a centred width x width square, warped; and masses."""
      low = (side - width) // 2
      squares = np.zeros((200, side, side, 1), np.float32)
      squares[:, low:low + width, low:low + width, 0] = 1.0
      warped = image_ops.random_affine(
          tf.constant(squares), tf.constant([0, 7], tf.int64),
          ranges).numpy()[..., 0]
      return warped, warped.sum(axis=(1, 2))

    # Only the shift range set: a centred dot moves by up to that fraction
    # of the side and keeps its mass (no zoom).
    warped, mass = warp_centred_square(2, image_ops.AffineRanges(
        0.0, 0.0, 0.2, 0.0))
    self.assertAllClose(mass, np.full(200, 4.0), atol=1e-3)
    cols = np.indices((side, side))[1]
    moved = np.abs((warped * cols).sum(axis=(1, 2)) / mass - 13.5)
    self.assertLessEqual(moved.max(), 0.2 * side + 0.05)
    self.assertGreater(moved.max(), 0.8 * 0.2 * side)
    # Only the zoom range set: a centred square's mass follows the square
    # of a scale in [0.7, 1.3] (within 15 %: bilinear sampling).
    _, mass = warp_centred_square(6, image_ops.AffineRanges(
        0.0, 0.3, 0.0, 0.0))
    self.assertTrue(np.all((mass > 0.7 ** 2 * 36 * 0.85) &
                           (mass < 1.3 ** 2 * 36 * 1.15)))
    self.assertGreater(mass.max() - mass.min(),
                       0.6 * (1.3 ** 2 - 0.7 ** 2) * 36)
