"""Signals become a flag inside `SignalFlag` and the old handlers come back;
the binaries' errors become one line."""

import contextlib
import io
import os
import signal

import tensorflow as tf

from meta_lstm_tf import file_lock
from meta_lstm_tf.training import stopping


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


class ExitOnErrorTest(tf.test.TestCase):

  def run_failing(self, error):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
      with self.assertRaises(SystemExit) as exited:
        with stopping.exit_on_error():
          raise error
    return exited.exception.code, stderr.getvalue()

  def test_expected_errors_become_one_line_and_exit_1(self):
    for error, line in (
        (tf.errors.DataLossError(None, None, 'truncated record at 12\n\t '
                                 '[[{{node RestoreV2}}]]\nmore context'),
         'error: DataLossError: truncated record at 12\n'),
        (OSError(28, 'No space left on device'),
         'error: OSError: [Errno 28] No space left on device\n'),
        (ValueError('num_ways=1: must be >= 2'),
         'error: num_ways=1: must be >= 2\n'),
        (file_lock.DirectoryBusyError("workdir '/w' is in use by pid 7"),
         "error: workdir '/w' is in use by pid 7\n"),
        (stopping.TrainingDivergedError('meta-loss is nan at step 3'),
         'error: meta-loss is nan at step 3\n')):
      code, stderr = self.run_failing(error)
      self.assertEqual(code, 1)
      self.assertEqual(stderr, line)

  def test_interrupt_exits_128_plus_the_signal(self):
    code, stderr = self.run_failing(
        stopping.TrainingInterrupted(signal.SIGTERM, '/run/ckpt-7'))
    self.assertEqual(code, 128 + signal.SIGTERM)
    self.assertEqual(stderr, '')

  def test_bugs_keep_their_traceback(self):
    with self.assertRaises(KeyError):
      with stopping.exit_on_error():
        raise KeyError('a bug')
