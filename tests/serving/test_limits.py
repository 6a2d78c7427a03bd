"""Tests of the serving limits and of hostile inputs: over-limit requests,
a decompression bomb, labels missing a class, NaN / Inf pixels, corrupt
files.

Each fault is sent to an exported SavedModel (the tiny learner of
test_serving, exported once with limits of its own so that over-limit
requests stay small) and must fail with `InvalidArgument` naming the input
(and, for a file, its position), while the model keeps serving. Memory is
measured as the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs).
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import parameterized
import numpy as np
from PIL import Image
import tensorflow as tf

from meta_lstm_tf import rules
from meta_lstm_tf.benchmarks import load_test
from meta_lstm_tf.benchmarks import memory
from meta_lstm_tf.serving import export as serving_export
from meta_lstm_tf.serving import modules as serving_modules
from meta_lstm_tf.serving import validation
from tests.fixtures import serving as fixtures

_LIMITS = validation.ServingLimits(max_support_images=12, max_query_images=8,
                                   max_image_height=4096,
                                   max_image_width=4000)

# Runs in a fresh process (no memory kept from other tests): peak RSS of one
# request with one 4000 x 4000 PNG, then of one with six; decoding one at
# a time keeps the second at the first.
_DECODE_MEMORY_SCRIPT = r'''
import json, sys
import numpy as np
import tensorflow as tf
from meta_lstm_tf.benchmarks import load_test
from meta_lstm_tf.benchmarks import memory
model = tf.saved_model.load(sys.argv[1])
signature = model.signatures['encoded_images']
def call(query):
  signature(support_images=tf.constant([load_test.blank_png(8, 8)] * 5),
            support_labels=tf.range(5), query_images=tf.constant(query))
png = load_test.blank_png(4000, 4000)
call([load_test.blank_png(8, 8)])
memory.reset_peak_rss()
base = memory.rss_mib()
call([png])
one = memory.peak_rss_mib() - base
call([png] * 6)
six = memory.peak_rss_mib() - base
print(json.dumps({'one': one, 'six': six}))
'''


def _jpeg(height: int, width: int, noise: bool = False) -> bytes:
  """A white (or, with `noise`, random: a long scan) grayscale JPEG."""
  pixels = (np.random.default_rng(0).integers(0, 256, (height, width),
                                              dtype=np.uint8) if noise
            else np.full((height, width), 255, np.uint8))
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='JPEG')
  return buffer.getvalue()


def _png_header_only(height: int, width: int) -> bytes:
  """A PNG signature and IHDR of height x width, and a body that does not
  decode: refused on the header alone, or it would fail as corrupt."""
  return load_test.blank_png(height, width)[:33] + b'not image data'


class ServingLimitsTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix='test_serving_limits_')
    cls.config = fixtures.tiny_config()
    cls.rule = rules.make_rule(cls.config)
    rng = np.random.default_rng(0)
    cls.labels = rng.permutation(
        np.repeat(np.arange(fixtures.NUM_WAYS), 2)).astype(
        np.int32)
    cls.support_u8 = fixtures.natural_images(rng, len(cls.labels), size=20)
    cls.query_u8 = fixtures.natural_images(rng, 7, size=24)
    cls.support = cls.support_u8.astype(np.float32) / 255.0
    cls.query = cls.query_u8.astype(np.float32) / 255.0
    cls.support_png = fixtures.pngs(cls.support_u8)
    cls.query_png = fixtures.pngs(cls.query_u8)
    cls.model_path = serving_export.export_adapt_and_classify(
        cls.rule, cls.config, os.path.join(cls.tmp, 'meta_lstm'),
        limits=_LIMITS)
    cls.learner_path = serving_export.export_adapted_learner(
        cls.rule, cls.config, cls.support, cls.labels, fixtures.CLASS_NAMES,
        os.path.join(cls.tmp, 'meta_lstm_adapted'), limits=_LIMITS)
    cls.model = tf.saved_model.load(cls.model_path)
    cls.learner = tf.saved_model.load(cls.learner_path)
    cls.expected = cls.model.signatures['serving_default'](
        support_images=tf.constant(cls.support),
        support_labels=tf.constant(cls.labels),
        query_images=tf.constant(cls.query))['classes'].numpy()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def _call(self, signature='serving_default', **overrides):
    if signature == serving_modules.ENCODED_SIGNATURE:
      inputs = dict(support_images=self.support_png,
                    support_labels=self.labels, query_images=self.query_png)
    else:
      inputs = dict(support_images=self.support, support_labels=self.labels,
                    query_images=self.query)
    inputs.update(overrides)
    outputs = self.model.signatures[signature](
        **{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}

  def _assert_refused(self, pattern, signature='serving_default',
                      **overrides):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, pattern):
      self._call(signature, **overrides)
    # The model keeps serving, with the same answers.
    self.assertAllEqual(self._call(signature)['classes'], self.expected)

  # ---------------------------------------------------------------- limits

  def test_limits_are_validated_and_recorded(self):
    self.assertEqual(validation.ServingLimits().to_dict(), dict(
        max_support_images=500, max_query_images=1000,
        max_image_height=1024, max_image_width=1024))
    for path in (self.model_path, self.learner_path):
      self.assertEqual(serving_export.read_metadata(path)['serving_limits'],
                       _LIMITS.to_dict())
    for field in ('max_support_images', 'max_image_width'):
      for value in (0, -1, 2**31, 1.5, True):
        with self.assertRaises(validation.LimitError) as caught:
          validation.ServingLimits(**{field: value}).validate()
        self.assertEqual(caught.exception.field, field)
        self.assertStartsWith(str(caught.exception), f'{field}=')

  @parameterized.named_parameters(
      ('support_count', r'support_images: too many images; the limit is 12 '
       r'\(max_support_images', dict(
           support_images=np.full((13, 1, 1, 1), 0.5, np.float32),
           support_labels=np.arange(13, dtype=np.int32) % fixtures.NUM_WAYS)),
      ('query_count', r'query_images: too many images; the limit is 8 '
       r'\(max_query_images', dict(
           query_images=np.full((9, 1, 1, 1), 0.5, np.float32))),
      ('height', r'query_images: images are larger than the limit of '
       r'4096 x 4000 .*\[1 4097 1 1\]', dict(
           query_images=np.full((1, 4097, 1, 1), 0.5, np.float32))),
      ('width', r'support_images: images are larger than the limit of '
       r'4096 x 4000 .*\[10 1 4001 1\]', dict(
           support_images=np.full((10, 1, 4001, 1), 0.5, np.float32))),
  )
  def test_float_request_over_a_limit_is_refused(self, pattern, overrides):
    self._assert_refused(pattern, **overrides)

  @parameterized.named_parameters(
      ('support_count', r'support_images: too many images; the limit is 12',
       lambda png: dict(support_images=np.array([png] * 13, object),
                        support_labels=np.arange(13, dtype=np.int32) % 5)),
      ('query_count', r'query_images: too many images; the limit is 8',
       lambda png: dict(query_images=np.array([png] * 9, object))),
      ('png_height', r'query_images\[1\] is 4097 x 8: larger than the limit '
       r'of 4096 x 4000 \(height x width, as the image headers say',
       lambda png: dict(query_images=np.array(
           [png, _png_header_only(4097, 8)], object))),
      ('png_width', r'support_images\[0\] is 8 x 4001: larger',
       lambda png: dict(support_images=np.array(
           [_png_header_only(8, 4001)] + [png] * 9, object))),
      ('jpeg_width', r'query_images\[2\] is 8 x 4001: larger',
       lambda png: dict(query_images=np.array(
           [png, png, _jpeg(8, 4001)], object))),
  )
  def test_encoded_request_over_a_limit_is_refused(self, pattern, overrides):
    self._assert_refused(pattern, serving_modules.ENCODED_SIGNATURE,
                         **overrides(self.query_png[0]))

  def test_adapted_learner_limits(self):
    for signature, images, pattern in (
        ('serving_default', np.full((9, 4, 4, 1), 0.5, np.float32),
         r'images: too many images; the limit is 8'),
        ('encoded_images', np.array([_png_header_only(5000, 5)], object),
         r'images\[0\] is 5000 x 5: larger than the limit')):
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, pattern):
        self.learner.signatures[signature](images=tf.constant(images))

  # ------------------------------------------------------ decompression bomb

  def test_blank_png_helper_makes_valid_images(self):
    # The bomb below is made the same way: a real image, not just a header.
    for height, width in ((64, 48), (70, 20000)):
      image = tf.io.decode_png(load_test.blank_png(height, width))
      self.assertEqual(image.shape, (height, width, 1))
      self.assertEqual(int(tf.reduce_max(image)), 0)

  def test_decompression_bomb_is_refused_before_decoding(self):
    bomb = load_test.blank_png(20000, 20000)
    # 400 MB of pixels (1.6 GB as float32) in under 1 MB.
    self.assertLess(len(bomb), 1 << 20)
    if not memory.reset_peak_rss():
      self.skipTest('/proc/self/clear_refs is not writable')
    query = np.array([self.query_png[0], bomb], object)
    # Warm up: the first call of a signature instantiates its graph.
    self._call(serving_modules.ENCODED_SIGNATURE)
    memory.reset_peak_rss()
    before = memory.rss_mib()
    with self.assertRaisesRegex(
        tf.errors.InvalidArgumentError,
        r'query_images\[1\] is 20000 x 20000: larger than the limit'):
      self._call(serving_modules.ENCODED_SIGNATURE, query_images=query)
    # MiB; decoding it would take over 1,500.
    self.assertLess(memory.peak_rss_mib() - before, 200)

  def test_encoded_images_are_decoded_one_at_a_time(self):
    if not memory.reset_peak_rss():
      self.skipTest('/proc/self/clear_refs is not writable')
    # glibc raises its mmap threshold after the first large free, so one
    # of the six 16 MB buffers may land on the heap, which never shrinks:
    # the peak then read 1.2-1.6x `one` in 5 of 6 runs (over 1.5x in 3),
    # decoding unchanged. A fixed threshold keeps every large buffer mmapped
    # and handed back on free (1.00-1.01x in 6 of 6).
    env = dict(fixtures.subprocess_env(), MALLOC_MMAP_THRESHOLD_='131072')
    result = subprocess.run(
        [sys.executable, '-c', _DECODE_MEMORY_SCRIPT, self.model_path],
        check=True, capture_output=True, text=True, cwd=self.tmp, env=env)
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    # MiB. One 4000 x 4000 image: 16 MB decoded, 64 MB as float32.
    self.assertGreater(peaks['one'], 40)
    # Six decoded side by side would need about six times that.
    self.assertLess(peaks['six'], 1.5 * peaks['one'])

  # ---------------------------------------------------------------- labels

  @parameterized.named_parameters(
      ('three_classes', [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], r'\[3 4\]'),
      ('no_class_4', [0, 1, 2, 3, 0, 1, 2, 3, 0, 1], r'\[4\]'),
  )
  def test_labels_missing_a_class_are_refused(self, labels, missing):
    pattern = (r'support_labels: every class 0\.\.4 needs at least one '
               r'support image \(the model is 5-way\); missing classes\] ' +
               missing)
    for signature in ('serving_default', 'encoded_images'):
      self._assert_refused(pattern, signature,
                           support_labels=np.array(labels, np.int32))

  def test_make_adapted_learner_needs_every_class(self):
    with self.assertRaisesRegex(ValueError, r'missing classes \[4\]'):
      serving_modules.make_adapted_learner(
          self.rule, self.config, self.support,
          np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1], np.int32),
          fixtures.CLASS_NAMES)

  # ------------------------------------------------------------ NaN and Inf

  @parameterized.named_parameters(
      ('nan_support', 'support_images', 2, np.nan),
      ('inf_query', 'query_images', 5, np.inf),
      ('minus_inf_query', 'query_images', 0, -np.inf),
  )
  def test_non_finite_pixels_are_refused(self, key, index, value):
    images = (self.support if key == 'support_images' else self.query).copy()
    images[index, 3, 4, 0] = value
    self._assert_refused(
        rf'{key}: pixel values must be finite; NaN or Inf in images at '
        rf'positions\] \[{index}\]', **{key: images})
    learner = self.learner.signatures['serving_default']
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r'images: pixel values must be finite'):
      learner(images=tf.constant(images[:_LIMITS.max_query_images]))

  # ---------------------------------------------------------- corrupt files

  @parameterized.named_parameters(
      ('png_body', 'query_images', 3, 'corrupt or truncated image data',
       load_test.corrupt_png),
      ('png_header', 'query_images', 1, 'unreadable header',
       lambda png: png[:8] + b'junk after the signature'),
      ('png_truncated', 'support_images', 4, 'corrupt or truncated',
       lambda png: png[:len(png) // 2]),
      ('jpeg_truncated', 'query_images', 6, 'corrupt or truncated',
       lambda png: _jpeg(64, 64, noise=True)[:1500]),
      ('jpeg_header', 'support_images', 0, 'unreadable header',
       lambda png: _jpeg(30, 30)[:40]),
  )
  def test_corrupt_image_is_named_by_position(self, key, index, why, corrupt):
    images = (self.support_png if key == 'support_images'
              else self.query_png).copy()
    images[index] = corrupt(images[index])
    self._assert_refused(
        rf'{key}\[{index}\]: not a decodable PNG/JPEG \({why}',
        serving_modules.ENCODED_SIGNATURE, **{key: images})

  def test_several_corrupt_images_are_all_named(self):
    query = self.query_png.copy()
    for index in (2, 5):
      query[index] = load_test.corrupt_png(query[index])
    self._assert_refused(
        r'query_images\[2\], query_images\[5\]: not a decodable PNG/JPEG',
        serving_modules.ENCODED_SIGNATURE, query_images=query)

  def test_adapted_learner_names_corrupt_image(self):
    images = self.query_png.copy()
    images[1] = load_test.corrupt_png(images[1])
    signature = self.learner.signatures['encoded_images']
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r'images\[1\]: not a decodable PNG/JPEG'):
      signature(images=tf.constant(images))
    self.assertEqual(
        signature(images=tf.constant(self.query_png))['classes'].shape, [7])

  def test_tf1_session_names_corrupt_image(self):
    # TF Serving runs signatures in a TF1-style session (the C++ loader):
    # the tf.data pipeline that names the image must run there too.
    query = self.query_png.copy()
    query[3] = load_test.corrupt_png(query[3])
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
      meta_graph = tf.compat.v1.saved_model.loader.load(
          session, ['serve'], self.model_path)
      signature = meta_graph.signature_def['encoded_images']
      feed = {signature.inputs['support_images'].name: self.support_png,
              signature.inputs['support_labels'].name: self.labels,
              signature.inputs['query_images'].name: self.query_png}
      classes = signature.outputs['classes'].name
      self.assertAllEqual(session.run(classes, feed), self.expected)
      feed[signature.inputs['query_images'].name] = query
      with self.assertRaisesRegex(
          tf.errors.InvalidArgumentError,
          r'query_images\[3\]: not a decodable PNG/JPEG'):
        session.run(classes, feed)


if __name__ == '__main__':
  tf.test.main()
