"""Thread-pool settings: applied before TensorFlow starts, refused after."""

import os
import subprocess
import sys

import tensorflow as tf

from meta_lstm_tf import runtime

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConfigureThreadsTest(tf.test.TestCase):

  def test_sets_the_pools_in_a_fresh_process(self):
    code = ('import tensorflow as tf\n'
            'from meta_lstm_tf import runtime\n'
            'print(runtime.configure_threads(1, 3))\n'
            'tf.constant(1.0) + 1.0\n'
            'print(runtime.thread_settings())\n')
    env = dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, env=env, check=True).stdout.splitlines()
    want = "{'intra_op_threads': 1, 'inter_op_threads': 3}"
    self.assertEqual(out[-2:], [want, want])

  def test_refuses_to_change_a_running_runtime(self):
    tf.constant(1.0) + 1.0  # pylint: disable=expression-not-assigned
    current = runtime.thread_settings()
    # Asking for what is already set is fine.
    self.assertEqual(runtime.configure_threads(**current), current)
    with self.assertRaisesRegex(RuntimeError, 'intra_op_threads=7.*already'):
      runtime.configure_threads(7, current['inter_op_threads'])

  def test_rejects_negative_counts(self):
    with self.assertRaisesRegex(ValueError, 'inter_op_threads=-1'):
      runtime.configure_threads(1, -1)


if __name__ == '__main__':
  tf.test.main()
