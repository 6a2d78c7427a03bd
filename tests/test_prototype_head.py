"""`head_init='prototypes'`: theta_0's linear head set from the support set's
class prototypes (Proto-MAML's initialisation) before the update rule runs.

Against NumPy (the head, and nearest-prototype predictions when the rule
leaves theta_0 alone), exact meta-gradients (finite differences, second
order), the first-order meta-gradient against an unrolled reference, and
the exported SavedModel against evaluation."""

import os
import shutil
import tempfile

import dataclasses
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import learners
from meta_lstm_tf import meta_learner
from meta_lstm_tf import rules
from meta_lstm_tf.data import image_ops
from meta_lstm_tf.learners import conv_ops
from meta_lstm_tf.serving import export as serving_export
from tests import test_inner_loop as tiny
from tests.fixtures import gradients
from tests.fixtures import serving as serving_fixtures


def _numpy_prototype_logits(features, labels, num_ways, queries):
  """-|x - c_k|^2 for each query x and class mean c_k."""
  prototypes = np.stack([features[labels == k].mean(0)
                         for k in range(num_ways)])
  return -((queries[:, None, :] - prototypes[None]) ** 2).sum(-1)


def _features(params, images):
  return learners.as_learner(tiny.TINY).head_features(params, images).numpy()


class PrototypeHeadTest(tf.test.TestCase):

  def test_head_is_twice_the_class_means_and_minus_their_squared_norms(self):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(7, 5))
    labels = np.array([2, 0, 1, 2, 0, 1, 2])
    kernel, bias = conv_ops.prototype_head(tf.constant(features),
                                           tf.constant(labels), 4)
    means = np.stack([features[labels == k].mean(0) for k in range(3)])
    self.assertAllClose(kernel[:, :3], 2 * means.T)
    self.assertAllClose(bias[:3], -(means ** 2).sum(-1))
    # A class without examples: prototype 0.
    self.assertAllClose(kernel[:, 3], np.zeros(5))
    self.assertAllClose(bias[3], 0.0)
    # The logits rank classes as the (negative squared) distances do.
    queries = rng.normal(size=(6, 5))
    logits = queries @ kernel.numpy()[:, :3] + bias.numpy()[:3]
    distances = _numpy_prototype_logits(features, labels, 3, queries)
    self.assertAllClose(logits - distances,
                        np.repeat((queries ** 2).sum(-1, keepdims=True), 3, 1))

  def test_theta_0_classifies_by_nearest_prototype(self):
    # SGD at learning rate 0 (its meta-weight) leaves theta_0 as
    # prototype_head_params made it.
    meta, data = tiny.tiny_problem(seed=3)
    support, support_labels, query, _ = data
    theta0 = meta[-1]
    rule = tiny.make_rule('sgd')
    result = inner_loop.adapt(rule, tf.constant(0.0, tf.float64), theta0,
                              support, support_labels, inner_steps=2,
                              head_init='prototypes')
    head_size = tiny.TINY.num_ways * (_features(theta0, support).shape[-1] + 1)
    self.assertAllEqual(result.params[:-head_size], theta0[:-head_size])
    self.assertNotAllClose(result.params[-head_size:], theta0[-head_size:])
    logits = inner_loop.query_logits(result, query, tiny.TINY,
                                     use_support_stats=False).numpy()
    # The queries' features with their own batch statistics, as above.
    want = _numpy_prototype_logits(_features(theta0, support),
                                   support_labels.numpy(), 2,
                                   _features(theta0, query))
    self.assertAllEqual(logits.argmax(-1), want.argmax(-1))
    self.assertAllClose(logits - logits[:, :1], want - want[:, :1])

  def test_zero_steps_is_the_prototype_classifier_and_needs_it(self):
    meta, data = tiny.tiny_problem(seed=6)
    support, support_labels, query, _ = data
    result = inner_loop.adapt(
        tiny.make_rule('meta_lstm'), tiny.pack_weights('meta_lstm', meta[:-1]),
        meta[-1], support, support_labels, inner_steps=0,
        head_init='prototypes')
    self.assertEqual(result.support_losses.shape, [1])
    self.assertEqual(result.forget_gate_mean.shape, [0])
    logits = inner_loop.query_logits(result, query, tiny.TINY,
                                     use_support_stats=False).numpy()
    want = _numpy_prototype_logits(_features(meta[-1], support),
                                   support_labels.numpy(), 2,
                                   _features(meta[-1], query))
    self.assertAllClose(logits - logits[:, :1], want - want[:, :1])
    config_lib.InnerLoopConfig(inner_steps=0, head_init='prototypes').validate()
    with self.assertRaisesRegex(ValueError, 'inner_steps=0'):
      config_lib.InnerLoopConfig(inner_steps=0).validate()

  def test_second_order_meta_gradient_matches_finite_differences(self):
    meta, data = tiny.tiny_problem(seed=4)

    def loss_fn(m):
      support, support_labels, query, query_labels = data
      result = inner_loop.adapt(
          tiny.make_rule('meta_lstm'), tiny.pack_weights('meta_lstm', m[:-1]),
          m[-1], support, support_labels, inner_steps=tiny.STEPS,
          second_order=True, head_init='prototypes')
      logits = inner_loop.query_logits(result, query, tiny.TINY,
                                       use_support_stats=False)
      return conv_ops.loss_and_accuracy(logits, query_labels)[0]

    with tf.GradientTape() as tape:
      tape.watch(meta)
      loss = loss_fn(meta)
    grads = tape.gradient(loss, meta)
    gradients.assert_matches_finite_differences(
        self, loss_fn, grads, meta, np.random.default_rng(7), eps=1e-6)
    # theta_0's own head is overwritten: no gradient reaches it.
    head_size = tiny.TINY.num_ways * (_features(meta[-1], data[0]).shape[-1]
                                      + 1)
    self.assertAllEqual(grads[-1][-head_size:], np.zeros(head_size))
    self.assertGreater(float(tf.reduce_max(tf.abs(grads[-1]))), 1e-6)

  def test_first_order_meta_gradient_flows_through_the_prototypes(self):
    meta, data = tiny.tiny_problem(seed=5)
    support, support_labels, _, _ = data

    def first_order(m):
      result = inner_loop.adapt(
          tiny.make_rule('meta_lstm'), tiny.pack_weights('meta_lstm', m[:-1]),
          m[-1], support, support_labels, inner_steps=tiny.STEPS,
          head_init='prototypes')
      logits = inner_loop.query_logits(result, data[2], tiny.TINY,
                                       use_support_stats=False)
      return conv_ops.loss_and_accuracy(logits, data[3])[0]

    def reference(m, stop_prototypes):
      theta0 = inner_loop.prototype_head_params(tiny.TINY, m[-1], support,
                                                support_labels)
      if stop_prototypes:
        theta0 = tf.stop_gradient(theta0 - m[-1]) + m[-1]
      return tiny.reference_first_order_loss(m[:-1] + [theta0], data)

    def gradient(fn):
      with tf.GradientTape() as tape:
        tape.watch(meta)
        loss = fn(meta)
      return tape.gradient(loss, meta)

    got = gradient(tf.function(first_order))
    want = gradient(lambda m: reference(m, False))
    for g, w in zip(got, want):
      self.assertAllClose(g, w, rtol=1e-9, atol=1e-12)
    without = gradient(lambda m: reference(m, True))
    head_size = tiny.TINY.num_ways * (_features(meta[-1], support).shape[-1]
                                      + 1)
    self.assertNotAllClose(got[-1][:-head_size], without[-1][:-head_size],
                           atol=1e-6)

  def test_unknown_head_init_and_headless_learner_are_named(self):
    meta, data = tiny.tiny_problem()
    with self.assertRaisesRegex(ValueError, 'head_init'):
      inner_loop.adapt(tiny.make_rule('sgd'), tf.constant(0.1, tf.float64),
                       meta[-1], data[0], data[1], inner_steps=1,
                       head_init='zeros')
    with self.assertRaisesRegex(ValueError, 'head_init'):
      config_lib.InnerLoopConfig(head_init='zeros').validate()
    import keras  # pylint: disable=g-import-not-at-top
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    with self.assertRaisesRegex(ValueError, "head_init='prototypes'"):
      meta_learner.MetaLearner(model, 'sgd', head_init='prototypes')


class PrototypeHeadExportTest(tf.test.TestCase):

  def test_export_classifies_as_evaluation_does(self):
    base = serving_fixtures.tiny_config()
    config = dataclasses.replace(
        base, inner_loop=dataclasses.replace(base.inner_loop,
                                             head_init='prototypes'))
    rule = rules.make_rule(config)
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(5), 2)).astype(np.int32)
    support_u8 = serving_fixtures.natural_images(rng, 10, size=20)
    query_u8 = serving_fixtures.natural_images(rng, 6, size=24)

    def evaluate(inner_config):
      # As the pipeline preprocesses (the export does the same in-graph).
      size = config.learner.image_size
      logits, _ = inner_loop.adapt_and_classify(
          rule, image_ops.preprocess_images(support_u8, size),
          tf.constant(labels), image_ops.preprocess_images(query_u8, size),
          inner_config, training=False)
      return logits.numpy()

    want = evaluate(config.inner_loop)
    self.assertNotAllClose(want, evaluate(base.inner_loop), atol=1e-3)
    tmp = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    path = serving_export.export_adapt_and_classify(
        rule, config, os.path.join(tmp, 'proto'))
    model = tf.saved_model.load(path)
    got = model.signatures['serving_default'](
        support_images=tf.constant(support_u8 / np.float32(255.0)),
        support_labels=tf.constant(labels),
        query_images=tf.constant(query_u8 / np.float32(255.0)))['logits'].numpy()
    self.assertAllClose(got, want, atol=1e-4)


if __name__ == '__main__':
  tf.test.main()
