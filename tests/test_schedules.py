"""The meta-learning-rate schedules against their closed forms."""

import math

from absl.testing import parameterized
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import schedules


def _train(**kwargs):
  return config_lib.TrainConfig(**kwargs).validate()


class SchedulesTest(tf.test.TestCase, parameterized.TestCase):

  def test_progress_is_the_larger_fraction(self):
    steps_only = _train(max_steps=100)
    self.assertEqual(schedules.progress(steps_only, 25, 1e9), 0.25)
    timed = _train(max_steps=100, max_train_seconds=50.0)
    self.assertEqual(schedules.progress(timed, 25, 10.0), 0.25)
    self.assertEqual(schedules.progress(timed, 25, 40.0), 0.8)
    self.assertEqual(schedules.progress(timed, 250, 400.0), 1.0)

  def test_constant_ignores_progress(self):
    train = _train(learning_rate=0.003)
    for fraction in (0.0, 0.5, 1.0):
      self.assertEqual(schedules.learning_rate(train, fraction), 0.003)

  @parameterized.parameters(0.0, 0.1, 0.25, 0.5, 0.9, 1.0, 1.5)
  def test_cosine_closed_form(self, fraction):
    train = _train(learning_rate=0.003, lr_schedule='cosine',
                   final_learning_rate=0.0005)
    clipped = min(fraction, 1.0)
    expected = 0.0005 + 0.0025 * (1 + math.cos(math.pi * clipped)) / 2
    self.assertAlmostEqual(schedules.learning_rate(train, fraction), expected)

  def test_cosine_ends(self):
    train = _train(learning_rate=0.002, lr_schedule='cosine')
    self.assertAlmostEqual(schedules.learning_rate(train, 0.0), 0.002)
    self.assertAlmostEqual(schedules.learning_rate(train, 0.5), 0.001)
    self.assertAlmostEqual(schedules.learning_rate(train, 1.0), 0.0)

  def test_bad_settings_name_the_field(self):
    with self.assertRaisesRegex(ValueError, '^lr_schedule='):
      _train(lr_schedule='step')
    with self.assertRaisesRegex(ValueError, '^final_learning_rate='):
      _train(learning_rate=0.001, final_learning_rate=0.01)
    with self.assertRaisesRegex(ValueError, '^final_learning_rate='):
      _train(final_learning_rate=-1.0)


if __name__ == '__main__':
  tf.test.main()
