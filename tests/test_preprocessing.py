"""Tests for the gradient/loss preprocessing."""

import math

import numpy as np
import tensorflow as tf

from meta_lstm_tf.rules import preprocessing
from tests.fixtures import reference


class PreprocessTest(tf.test.TestCase):

  def test_matches_numpy_on_both_branches(self):
    x = np.array([1e3, 2.0, -0.5, 1e-3, -1e-4, 1e-6, -3e-7, 0.0, 4.5399e-5])
    self.assertAllClose(preprocessing.preprocess(tf.constant(x)),
                        reference.numpy_preprocess(x), rtol=1e-12, atol=1e-12)

  def test_threshold_and_values(self):
    p = 10.0
    out = preprocessing.preprocess(tf.constant([math.e ** 2, -1e-6],
                                               tf.float64), p).numpy()
    self.assertAllClose(out[0], [0.2, 1.0])
    self.assertAllClose(out[1], [-1.0, -1e-6 * math.exp(p)])

  def test_gradient_is_finite_at_zero(self):
    x = tf.constant([0.0, 1.0, -1e-8], tf.float64)
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = tf.reduce_sum(preprocessing.preprocess(x))
    grad = tape.gradient(y, x)
    self.assertTrue(np.all(np.isfinite(grad.numpy())))
    self.assertAllClose(grad.numpy()[[0, 2]], [math.exp(10)] * 2)
