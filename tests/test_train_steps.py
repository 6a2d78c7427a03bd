"""The compiled steps: which batch-norm statistics meta-training queries
use, first order at evaluation, and global-norm clipping of the
meta-gradient against its closed form."""

import dataclasses
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import evaluation
from meta_lstm_tf import inner_loop
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf import rules
from meta_lstm_tf.training import train_steps
from meta_lstm_tf.benchmarks import training
from tests.fixtures import pools as pool_fixtures

CONFIG = pool_fixtures.tiny_config()
INNER = CONFIG.inner_loop  # T = 2, first order, train_query_stats='batch'.


def _episodes(batch=2, seed=1):
  """A meta-batch of `batch` random 3-way 1-shot episodes, 2 queries per
  class, 8 x 8 images (CONFIG's shape)."""
  return training.synthetic_episodes(CONFIG.episode, 8, meta_batch_size=batch,
                                     seed=seed)


def _first(episodes):
  return tf.nest.map_structure(lambda x: x[0], episodes)


class TrainQueryStatsTest(tf.test.TestCase):
  """`train_query_stats`: the statistics meta-training queries use."""

  def test_support_normalises_queries_with_the_support_statistics(self):
    rule = rules.make_rule(CONFIG)
    episode = _first(_episodes())
    spec = learner.param_spec(CONFIG.learner)
    for stats in ('batch', 'support'):
      inner = dataclasses.replace(INNER, train_query_stats=stats)
      logits, result = inner_loop.adapt_and_classify(
          rule, episode.support_images, episode.support_labels,
          episode.query_images, inner, training=True)
      loss, _, _ = inner_loop.episode_loss(rule, episode, inner,
                                            training=True)
      # theta_T on the queries, normalised with the episode's running
      # support statistics, and with the query batch's own.
      params = learner.unflatten(result.params, spec)
      with_support, _ = learner.apply(params, episode.query_images,
                                      CONFIG.learner, bn_stats=result.bn_stats)
      with_batch, _ = learner.apply(params, episode.query_images,
                                    CONFIG.learner)
      loss_support, _ = learner.loss_and_accuracy(with_support,
                                                  episode.query_labels)
      loss_batch, _ = learner.loss_and_accuracy(with_batch,
                                                episode.query_labels)
      # The two protocols give other numbers here, so the checks can fail.
      self.assertGreater(float(tf.reduce_max(tf.abs(with_support -
                                                    with_batch))), 1e-2)
      self.assertGreater(abs(float(loss_support - loss_batch)), 1e-3)
      want_logits, want_loss = ((with_support, loss_support)
                                if stats == 'support' else
                                (with_batch, loss_batch))
      self.assertAllClose(logits, want_logits, rtol=1e-5, atol=1e-5,
                          msg=stats)
      self.assertAllClose(loss, want_loss, rtol=1e-5, atol=1e-6, msg=stats)


class EvaluationOrderTest(tf.test.TestCase):
  """Evaluation never differentiates the learner's gradient."""

  def test_evaluation_is_first_order_even_when_training_is_second_order(self):
    rule = rules.make_rule(CONFIG)
    episodes = _episodes()
    second = dataclasses.replace(INNER, second_order=True)
    seen = []
    support_loss_and_gradient = inner_loop.support_loss_and_gradient

    def spy(params, images, labels, learner_, second_order, *args):
      seen.append(second_order)
      return support_loss_and_gradient(params, images, labels, learner_,
                                       second_order, *args)

    with mock.patch.object(inner_loop, 'support_loss_and_gradient', spy):
      first_order_eval = evaluation.make_eval_step(rule, INNER)(episodes)
      self.assertEqual(seen, [False, False])  # One trace per episode.
      del seen[:]
      second_order_eval = evaluation.make_eval_step(rule, second)(episodes)
      self.assertEqual(seen, [False, False])
      del seen[:]
      # The spy sees second order where it is asked for: meta-training.
      optimizer = keras.optimizers.SGD(0.0)
      optimizer.build(rule.trainable_variables)
      train_steps.make_meta_train_step(rule, optimizer, second,
                                       clip_norm=0.0)(episodes)
      self.assertEqual(seen, [True, True])
    for got, want in zip(second_order_eval, first_order_eval):
      self.assertAllEqual(got, want)


class ClippingTest(tf.test.TestCase):
  """The meta-train step applies g * min(1, c / ||g||), ||g|| the global
  norm over every meta-parameter's gradient (NumPy, float64)."""

  def test_global_norm_clipping_matches_its_closed_form(self):
    episodes = _episodes()
    reference = rules.make_rule(CONFIG)
    raw, _ = tf.function(lambda e: train_steps.meta_gradients(
        reference, e, INNER))(episodes)
    raw = [g.numpy().astype(np.float64) for g in raw]
    self.assertGreater(len(raw), 2)  # Several tensors share one norm.
    norm = np.sqrt(sum(np.sum(g ** 2) for g in raw))
    tensor_norms = [np.sqrt(np.sum(g ** 2)) for g in raw]
    # At c = norm / 4 a tensor holds more than c of it, and one less: a
    # per-tensor clip would differ.
    self.assertGreater(max(tensor_norms), norm / 4)
    self.assertLess(min(tensor_norms), norm / 4)
    for clip_norm in (norm / 4, 4 * norm, 0.0):
      rule = rules.make_rule(CONFIG)  # The same initial values each time.
      before = [v.numpy().astype(np.float64) for v in rule.trainable_variables]
      # Plain SGD at rate 1: the parameters move by the applied gradient.
      optimizer = keras.optimizers.SGD(learning_rate=1.0)
      optimizer.build(rule.trainable_variables)
      metrics = train_steps.make_meta_train_step(
          rule, optimizer, INNER, float(clip_norm))(episodes)
      applied = [b - v.numpy() for b, v in zip(before,
                                               rule.trainable_variables)]
      scale = min(1.0, clip_norm / norm) if clip_norm > 0 else 1.0
      self.assertAllClose(float(metrics['grad_norm']), norm, rtol=1e-5)
      for got, gradient in zip(applied, raw):
        self.assertAllClose(got, scale * gradient, rtol=1e-4, atol=1e-6,
                            msg=f'clip_norm={clip_norm}')
      if clip_norm == norm / 4:
        self.assertAllClose(np.sqrt(sum(np.sum(a ** 2) for a in applied)),
                            clip_norm, rtol=1e-4)


if __name__ == '__main__':
  tf.test.main()
