"""Progress output: plain lines when stdout is not a terminal."""

import io

import keras
import tensorflow as tf

from meta_lstm_tf.training import progress


class _Clock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class _Terminal(io.StringIO):

  def isatty(self):
    return True


class LineProgressTest(tf.test.TestCase):

  def test_one_plain_line_every_n_steps(self):
    stream, clock = io.StringIO(), _Clock()
    bar = progress.LineProgress(100, every=10, stream=stream, clock=clock)
    bar.update(0)
    for step in range(1, 31):
      clock.now += 0.5  # 2 steps/s
      bar.update(step, [('loss', 1.0 / step), ('acc', 0.5)])
    lines = stream.getvalue().splitlines()
    self.assertLen(lines, 3)
    self.assertNotIn('\r', stream.getvalue())
    self.assertEqual(
        lines[-1], 'step 30/100  2.0 steps/s  loss 0.0333  acc 0.5000  '
        'left 35s')

  def test_time_budget_shortens_the_estimate(self):
    stream, clock = io.StringIO(), _Clock()
    bar = progress.LineProgress(1_000_000, every=5, stream=stream,
                                clock=clock, seconds_left=lambda: 125.0)
    bar.update(10)
    clock.now = 1.0
    bar.update(15)
    self.assertEqual(stream.getvalue(),
                     'step 15/1000000  5.0 steps/s  left 2m05s\n')

  def test_last_step_is_always_printed(self):
    stream, clock = io.StringIO(), _Clock()
    bar = progress.LineProgress(7, every=5, stream=stream, clock=clock)
    bar.update(0)
    clock.now = 7.0
    bar.update(7)
    self.assertStartsWith(stream.getvalue(), 'step 7/7  1.0 steps/s')

  def test_terminal_gets_the_keras_bar_and_a_file_gets_lines(self):
    self.assertIsInstance(
        progress.make_progress(10, 2, stream=_Terminal()),
        keras.utils.Progbar)
    self.assertIsInstance(progress.make_progress(10, 2, stream=io.StringIO()),
                          progress.LineProgress)
    quiet = progress.make_progress(10, 2, enabled=False, stream=io.StringIO())
    self.assertNotIsInstance(quiet, progress.LineProgress)

  def test_rejects_a_zero_interval(self):
    with self.assertRaisesRegex(ValueError, 'every=0'):
      progress.LineProgress(10, every=0)


if __name__ == '__main__':
  tf.test.main()
