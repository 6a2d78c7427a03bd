"""How loud the binaries are: quiet by default, --verbosity brings INFO
back (verbosity.py, cli.run_binary)."""

import os
import subprocess
import sys
from unittest import mock

from absl.testing import parameterized
import tensorflow as tf

from meta_lstm_tf.bin import verbosity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A binary as the package's are: quiet before TensorFlow loads, then
# cli.run_binary. Prints the C++ log level it left, logs at INFO and WARNING.
_BINARY = r'''
import os, sys
from meta_lstm_tf.bin import verbosity
verbosity.quiet_tensorflow_by_default(sys.argv)
print('TF_CPP_MIN_LOG_LEVEL=' + os.environ.get('TF_CPP_MIN_LOG_LEVEL', ''))
from absl import logging
from meta_lstm_tf.bin import cli
import tensorflow as tf
def main(argv):
  logging.info('info from absl')
  tf.get_logger().info('info from tensorflow')
  logging.warning('warning from absl')
cli.run_binary(main)
'''


class VerbosityTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      ([], None), (['--verbosity=0'], 0), (['-v', '1'], 1), (['--v=-1'], -1),
      (['-verbosity', '2'], 2), (['-v=0', '--verbosity=-2'], -2),
      (['--', '--verbosity=1'], None), (['--verbosity=x'], None),
      (['--verbose=1', '--vv=1'], None))
  def test_verbosity_from_argv(self, args, expected):
    self.assertEqual(verbosity.verbosity_from_argv(['prog'] + args), expected)

  @parameterized.parameters(([], '2'), (['--verbosity=-1'], '2'),
                            (['--verbosity=0'], None), (['-v', '1'], None))
  def test_quiet_tensorflow_by_default(self, args, expected):
    with mock.patch.dict(os.environ, clear=True):
      verbosity.quiet_tensorflow_by_default(['prog'] + args)
      self.assertEqual(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), expected)
    with mock.patch.dict(os.environ, {'TF_CPP_MIN_LOG_LEVEL': '0'}):
      verbosity.quiet_tensorflow_by_default(['prog'] + args)
      self.assertEqual(os.environ['TF_CPP_MIN_LOG_LEVEL'], '0')  # Kept.

  @parameterized.parameters(([], False, '2'), (['--verbosity=0'], True, ''),
                            (['-v', '0'], True, ''))
  def test_binary_logs_info_only_when_asked(self, args, info, cpp_level):
    env = {k: v for k, v in os.environ.items()
           if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = REPO
    result = subprocess.run([sys.executable, '-c', _BINARY] + args,
                            capture_output=True, text=True, env=env,
                            timeout=120, check=True)
    self.assertIn(f'TF_CPP_MIN_LOG_LEVEL={cpp_level}\n', result.stdout)
    self.assertIn('warning from absl', result.stderr)
    for message in ('info from absl', 'info from tensorflow'):
      if info:
        self.assertIn(message, result.stderr)
      else:
        self.assertNotIn(message, result.stderr)


if __name__ == '__main__':
  tf.test.main()
