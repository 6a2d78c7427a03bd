"""Tests for the functional learner and its flat view."""

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import runtime
from meta_lstm_tf.learners import conv_ops as learner


class LearnerTest(tf.test.TestCase):

  def test_paper_learner_shapes_and_names(self):
    cfg = config_lib.LearnerConfig()
    spec = learner.param_spec(cfg)
    self.assertEqual(spec['conv1/kernel'], (3, 3, 1, 32))
    self.assertEqual(spec['conv4/kernel'], (3, 3, 32, 32))
    self.assertEqual(spec['bn2/scale'], (32,))
    self.assertEqual(spec['linear/kernel'], (32, 5))  # 28 -> 14 -> 7 -> 3 -> 1
    self.assertEqual(learner.num_params(cfg), 28485)
    params = learner.init_params(cfg)
    logits, stats = learner.apply(params, tf.zeros([3, 28, 28, 1]), cfg)
    self.assertEqual(logits.shape, (3, 5))
    self.assertLen(stats.means, 4)

  def test_flatten_unflatten_round_trip(self):
    cfg = config_lib.LearnerConfig(num_filters=3, num_blocks=2, image_size=8,
                                   num_ways=4)
    spec = learner.param_spec(cfg)
    params = learner.init_params(cfg, seed=3)
    flat = learner.flatten(params, spec)
    self.assertEqual(flat.shape, (learner.num_params(cfg),))
    back = learner.unflatten(flat, spec)
    self.assertEqual(list(back), list(spec))
    for name in spec:
      self.assertAllEqual(back[name], params[name])
    self.assertAllEqual(learner.flatten(back, spec), flat)

  def test_batch_norm_second_derivative_is_exact(self):
    # d^2/dx^2 of sum(bn(x)^3) against finite differences of the gradient.
    rng = np.random.default_rng(0)
    x0 = tf.constant(rng.normal(size=(3, 2, 2, 2)))
    v = tf.constant(rng.normal(size=(3, 2, 2, 2)))
    scale, offset = tf.constant([1.3, 0.7], tf.float64), tf.constant(
        [0.1, -0.2], tf.float64)

    def grad_at(x):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y, _ = learner.batch_norm(x, scale, offset, 1e-3)
        loss = tf.reduce_sum(y ** 3 * tf.range(1.0, 25.0, dtype=tf.float64)
                             [:, None, None, None][:3])
      return tape.gradient(loss, x)

    with tf.GradientTape() as outer:
      outer.watch(x0)
      g = grad_at(x0)
      gv = tf.reduce_sum(g * v)
    hvp = outer.gradient(gv, x0)
    eps = 1e-6
    fd = (grad_at(x0 + eps * v) - grad_at(x0 - eps * v)) / (2 * eps)
    self.assertAllClose(hvp, fd, rtol=1e-6, atol=1e-7)

  def test_running_statistics_are_used_when_given(self):
    cfg = config_lib.LearnerConfig(num_filters=2, num_blocks=1, image_size=4,
                                   num_ways=2)
    params = learner.init_params(cfg)
    images = tf.random.stateless_uniform([4, 4, 4, 1], seed=[1, 2])
    _, batch = learner.apply(params, images, cfg)
    same, _ = learner.apply(params, images, cfg, bn_stats=batch)
    own, _ = learner.apply(params, images, cfg)
    self.assertAllClose(same, own, atol=1e-5)
    fresh = learner.init_bn_stats(cfg)
    other, _ = learner.apply(params, images, cfg, bn_stats=fresh)
    self.assertNotAllClose(other, own)

  def test_cumulative_bn_average(self):
    cfg = config_lib.LearnerConfig(num_filters=2, num_blocks=1, image_size=4,
                                   num_ways=2)
    stats = learner.init_bn_stats(cfg)
    passes = [np.array([1.0, 2.0]), np.array([3.0, 6.0]), np.array([5.0, 1.0])]
    for m in passes:
      batch = stats._replace(means=(tf.constant(m, tf.float32),),
                             variances=(tf.constant(m * 2, tf.float32),))
      stats = learner.accumulate_bn_stats(stats, batch)
    self.assertAllClose(stats.means[0], np.mean(passes, axis=0))
    self.assertAllClose(stats.variances[0], 2 * np.mean(passes, axis=0))
    self.assertEqual(float(stats.count), 3.0)

  def test_loss_and_accuracy(self):
    logits = tf.constant([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], tf.float64)
    labels = tf.constant([0, 1, 1])
    loss, accuracy = learner.loss_and_accuracy(logits, labels)
    log_p = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    expected = -np.mean([log_p[0, 0], log_p[1, 1], log_p[2, 1]])
    self.assertAllClose(loss, expected)
    self.assertAllClose(accuracy, 2 / 3)


class FusedBatchNormTest(tf.test.TestCase):

  def test_fused_and_exact_agree_in_value_stats_and_gradient(self):
    # With conv biases and BN offsets away from their zero initialisation:
    # the fused path folds the bias into the statistics (batch statistics)
    # or the offset (given statistics) instead of adding it.
    cfg = config_lib.LearnerConfig(num_filters=4, num_blocks=2, image_size=8,
                                   num_ways=3)
    params = _random_params(cfg, 4)
    spec = learner.param_spec(cfg)
    flat = learner.flatten(params, spec)
    images = tf.random.stateless_uniform([6, 8, 8, 1], seed=[5, 6])
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    outputs = {}
    for twice in (True, False):
      with tf.GradientTape() as tape:
        tape.watch(flat)
        logits, stats = learner.apply(learner.unflatten(flat, spec), images,
                                      cfg, twice_differentiable=twice)
        loss, _ = learner.loss_and_accuracy(logits, labels)
      # Normalising with given statistics: the bias no longer cancels.
      with tf.GradientTape() as tape2:
        tape2.watch(flat)
        evaluated, _ = learner.apply(learner.unflatten(flat, spec), images,
                                     cfg, bn_stats=stats,
                                     twice_differentiable=twice)
        eval_loss, _ = learner.loss_and_accuracy(evaluated, labels)
      outputs[twice] = (logits, stats.means, stats.variances,
                        tape.gradient(loss, flat), evaluated,
                        tape2.gradient(eval_loss, flat))
    # The means include the bias, so they are far from the bias-free ones.
    self.assertGreater(float(tf.reduce_max(tf.abs(
        outputs[False][1][0] - tf.reduce_mean(tf.nn.conv2d(
            images, params['conv1/kernel'], 1, 'SAME'), [0, 1, 2])))), 0.1)
    for exact, fused in zip(outputs[True], outputs[False]):
      self.assertAllClose(exact, fused, rtol=2e-4, atol=2e-5)


def _random_params(cfg, seed, dtype=tf.float32):
  """init_params with non-zero conv biases and BN offsets (init gives 0)."""
  rng = np.random.default_rng(seed)
  params = learner.init_params(cfg, seed=seed)
  for name in params:
    if name.endswith('/bias') or name.endswith('/offset'):
      params[name] = rng.normal(size=params[name].shape).astype(np.float32)
  return {name: tf.constant(value, dtype) for name, value in params.items()}


class FastPathTest(tf.test.TestCase):
  """The first-order path's rewrites compute the same function."""

  cfg = config_lib.LearnerConfig(num_filters=4, num_blocks=2, image_size=8,
                                 num_ways=3)

  def test_first_block_patches_are_the_convs_input(self):
    images = tf.random.stateless_uniform([5, 8, 8, 1], seed=[1, 2],
                                         dtype=tf.float64)
    patches = learner.first_block_patches(images)
    self.assertEqual(patches.shape, (5, 8, 8, 9))
    padded = np.pad(images.numpy(), [(0, 0), (1, 1), (1, 1), (0, 0)])
    for kh in range(3):
      for kw in range(3):
        self.assertAllEqual(patches[..., kh * 3 + kw],
                            padded[:, kh:kh + 8, kw:kw + 8, 0])
    params = _random_params(self.cfg, 3, tf.float64)
    flat = learner.flatten(params, learner.param_spec(self.cfg))
    labels = tf.constant([0, 1, 2, 0, 1])
    results = []
    for given in (None, patches):
      for twice in (True, False):
        with tf.GradientTape() as tape:
          tape.watch(flat)
          logits, stats = learner.apply(
              learner.unflatten(flat, learner.param_spec(self.cfg)), images,
              self.cfg, twice_differentiable=twice, patches=given)
          loss, _ = learner.loss_and_accuracy(logits, labels)
        results.append((logits, stats.means, tape.gradient(loss, flat)))
    for other in results[1:]:
      self.assertAllClose(results[0], other, rtol=1e-10, atol=1e-12)

  def test_bfloat16_convs_keep_float32_outside_and_stay_close(self):
    spec = learner.param_spec(self.cfg)
    flat = learner.flatten(learner.init_params(self.cfg, seed=7), spec)
    images = tf.random.stateless_uniform([6, 8, 8, 1], seed=[7, 8])
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    patches = learner.first_block_patches(images)
    outputs = {}
    for dtype in (None, tf.bfloat16):
      with tf.GradientTape() as tape:
        tape.watch(flat)
        logits, stats = learner.apply(learner.unflatten(flat, spec), images,
                                      self.cfg, twice_differentiable=False,
                                      patches=patches, conv_dtype=dtype)
        loss, _ = learner.loss_and_accuracy(logits, labels)
      grad = tape.gradient(loss, flat)
      self.assertEqual(logits.dtype, tf.float32)
      self.assertEqual(grad.dtype, tf.float32)
      for mean in stats.means:
        self.assertEqual(mean.dtype, tf.float32)
      outputs[dtype] = (logits, grad)
    (logits32, grad32), (logits16, grad16) = outputs[None], outputs[
        tf.bfloat16]
    self.assertNotAllClose(logits32, logits16, rtol=1e-6, atol=1e-6)
    self.assertAllClose(logits32, logits16, rtol=0.05, atol=0.05)
    # An approximation: about 1 % here, 13 % (cosine 0.99) for the 5-way
    # 28x28 learner's query pass, most in the first blocks (BUILD.md), where
    # the CPU computes bfloat16 natively (AVX512-BF16 or AMX: the only CPUs
    # `--conv_dtype=auto` picks it on). Elsewhere (an AMD Zen 3, AVX2 only)
    # the emulated backward pass measured 27 %: only the cosine is checked.
    error = float(tf.norm(grad16 - grad32) / tf.norm(grad32))
    if runtime.cpu_has_bfloat16():
      self.assertLess(error, 0.05)
    cosine = float(tf.reduce_sum(grad16 * grad32) /
                   (tf.norm(grad16) * tf.norm(grad32)))
    self.assertGreater(cosine, 0.9)

  def test_bfloat16_is_ignored_where_second_derivatives_are_needed(self):
    params = _random_params(self.cfg, 8)
    images = tf.random.stateless_uniform([6, 8, 8, 1], seed=[9, 10])
    exact, _ = learner.apply(params, images, self.cfg)
    asked, _ = learner.apply(params, images, self.cfg,
                             conv_dtype=tf.bfloat16)
    self.assertAllEqual(exact, asked)
