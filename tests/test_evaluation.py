"""Evaluation helpers: mean and CI, batching, per-episode accuracies."""

import math

import numpy as np
import tensorflow as tf

from meta_lstm_tf import evaluation
from meta_lstm_tf import types


def _episode(value):
  image = tf.fill([1, 2, 2, 1], float(value))
  label = tf.constant([0])
  return types.Episode(image, label, image, label)


class EvaluationTest(tf.test.TestCase):

  def test_mean_and_ci95_against_numpy(self):
    values = [0.0, 1.0, 0.5, 0.25, 0.75]
    mean, ci95 = evaluation.mean_and_ci95(values)
    self.assertAlmostEqual(mean, np.mean(values))
    self.assertAlmostEqual(ci95, 1.96 * np.std(values) / math.sqrt(5))

  def test_batches_keep_order_and_the_last_may_be_smaller(self):
    batches = evaluation.batch_episodes([_episode(v) for v in range(6)],
                                        batch_size=4)
    self.assertEqual([b.support_images.shape[0] for b in batches], [4, 2])
    firsts = np.concatenate([b.support_images[:, 0, 0, 0, 0].numpy()
                             for b in batches])
    self.assertAllEqual(firsts, np.arange(6))

  def test_evaluate_returns_per_episode_accuracies_in_order(self):

    def eval_step(batch):
      accuracy = batch.support_images[:, 0, 0, 0, 0] / 10.0
      return 1.0 - accuracy, accuracy

    result = evaluation.evaluate(
        eval_step, evaluation.batch_episodes([_episode(v) for v in range(5)],
                                             batch_size=2))
    self.assertAllClose(result['accuracies'], [0.0, 0.1, 0.2, 0.3, 0.4])
    self.assertEqual(result['episodes'], 5)
    self.assertAlmostEqual(result['accuracy'], 0.2, places=6)
    self.assertAlmostEqual(result['loss'], 0.8, places=6)
    self.assertAlmostEqual(
        result['ci95'], evaluation.mean_and_ci95(result['accuracies'])[1])


if __name__ == '__main__':
  tf.test.main()
