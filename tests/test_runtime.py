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


class ConvDtypeTest(tf.test.TestCase):

  def _cpuinfo(self, flags_line):
    path = os.path.join(self.get_temp_dir(), 'cpuinfo')
    with open(path, 'w') as f:
      f.write('processor\t: 0\nmodel name\t: Test CPU\n'
              f'flags\t\t: {flags_line}\n')
    return path

  def test_bfloat16_cpus_are_told_apart_by_their_flags(self):
    self.assertTrue(runtime.cpu_has_bfloat16(
        self._cpuinfo('fpu sse avx2 avx512f avx512_bf16 avx512_vnni')))
    self.assertTrue(runtime.cpu_has_bfloat16(
        self._cpuinfo('fpu avx512f amx_bf16 amx_tile')))
    self.assertFalse(runtime.cpu_has_bfloat16(
        self._cpuinfo('fpu sse avx2 avx512f avx512_vnni')))
    # A flag that only starts like one is not it.
    self.assertFalse(runtime.cpu_has_bfloat16(self._cpuinfo('avx512_bf16x')))
    self.assertFalse(runtime.cpu_has_bfloat16('/nonexistent/cpuinfo'))

  def test_resolve(self):
    self.assertEqual(runtime.resolve_conv_dtype('float32'), tf.float32)
    self.assertEqual(runtime.resolve_conv_dtype('bfloat16'), tf.bfloat16)
    want = (tf.bfloat16 if runtime.cpu_has_bfloat16()
            and not tf.config.list_logical_devices('GPU') else tf.float32)
    self.assertEqual(runtime.resolve_conv_dtype('auto'), want)
    with self.assertRaisesRegex(ValueError, "conv_dtype='float16'"):
      runtime.resolve_conv_dtype('float16')
