"""Signals become a flag inside `SignalFlag` and the old handlers come back."""

import os
import signal

import tensorflow as tf

from meta_lstm_tf import stopping


class SignalFlagTest(tf.test.TestCase):

  def test_signal_sets_the_flag_and_handlers_are_restored(self):
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda *a: calls.append(a))
    try:
      with stopping.SignalFlag() as flag:
        self.assertIsNone(flag.signum)
        os.kill(os.getpid(), signal.SIGTERM)
        self.assertEqual(flag.signum, signal.SIGTERM)
        self.assertEqual(calls, [])  # Caught by the flag, not the old one.
      os.kill(os.getpid(), signal.SIGTERM)
      self.assertLen(calls, 1)  # The old handler is back.
    finally:
      signal.signal(signal.SIGTERM, previous)

  def test_interrupted_says_how_to_resume(self):
    error = stopping.TrainingInterrupted(signal.SIGINT, '/run/ckpt-7')
    self.assertEqual(error.signum, signal.SIGINT)
    self.assertIn('/run/ckpt-7', str(error))
    self.assertIn('rerun the same command to resume', str(error))


if __name__ == '__main__':
  tf.test.main()
