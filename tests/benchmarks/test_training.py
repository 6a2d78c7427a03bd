"""benchmarks.training: the benchmark's settings and its per-part breakdown."""

import os

from absl import flags
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf.benchmarks import training

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _flagfile_values(path):
  values = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line.startswith('--') and '=' in line:
        name, value = line[2:].split('=', 1)
        values[name] = value
  return values


class BenchmarkSettingsTest(tf.test.TestCase):

  def test_base_meta_learner_is_what_base_flags_trains(self):
    flags_file = _flagfile_values(os.path.join(_ROOT, 'configs',
                                               'base.flags'))
    for name, value in training.META_LEARNERS['base'].items():
      self.assertIn(name, flags_file)
      self.assertEqual(type(value)(flags_file[name]), value, name)

  def test_conv_dtype_default_is_what_base_flags_trains(self):
    flags_file = _flagfile_values(os.path.join(_ROOT, 'configs',
                                               'base.flags'))
    from meta_lstm_tf.bin import benchmark  # pylint: disable=g-import-not-at-top
    flag_values = flags.FlagValues()
    benchmark.define_flags(flag_values)
    self.assertEqual(flags_file['conv_dtype'], flag_values['conv_dtype'].default)

  def test_learner_bound_and_conv_throughput(self):
    episode = config_lib.EpisodeConfig(3, 1, 2)
    bound = training.learner_bound_ms(episode, image_size=16, inner_steps=2,
                                      calls=2, repeats=1)
    self.assertTrue(np.isfinite(bound) and bound > 0)
    more = training.learner_bound_ms(episode, image_size=16, inner_steps=12,
                                     calls=2, repeats=1)
    self.assertGreater(more, bound)  # T support passes, run in sequence.
    gflops = training.conv_gflops(num_images=6, image_size=8, num_filters=8,
                                  calls=2, repeats=1)
    self.assertEqual(gflops['shape'], [6, 4, 4, 8])
    self.assertAlmostEqual(gflops['mflop'],
                           round(2 * 6 * 4 * 4 * 9 * 8 * 8 / 1e6, 1))
    for dtype in ('float32', 'bfloat16'):
      for part in ('forward', 'kernel_gradient', 'input_gradient'):
        self.assertGreater(gflops[dtype][part], 0, (dtype, part))

  def test_meta_batch_counts_every_episode(self):
    episode = config_lib.EpisodeConfig(3, 1, 2)
    calls = []
    original = training.train_steps.make_meta_train_step

    def recording(*args, **kwargs):
      step = original(*args, **kwargs)

      def counted(episodes):
        calls.append(episodes.support_images.shape[0])
        return step(episodes)
      return counted

    training.train_steps.make_meta_train_step = recording
    try:
      timing = training.time_meta_train(episode, 2, 16, False, steps=2,
                                        repeats=1, meta_batch_size=3)
    finally:
      training.train_steps.make_meta_train_step = original
    self.assertEqual(set(calls), {3})  # Three episodes in every step.
    self.assertTrue(np.isfinite(timing['episodes_per_sec']))
    self.assertGreater(timing['episodes_per_sec'], 0)

  def test_paper_layout_is_the_papers(self):
    config = training.meta_learner_config('paper')
    self.assertEqual(config.hidden_size, 20)
    self.assertEqual(config.gate_bias, 'shared')
    self.assertEqual(config.gate_bias_ranges(), ((4.0, 5.0), (-5.0, -4.0)))

  def test_cpu_model_names_the_cpu(self):
    model = training.cpu_model()
    self.assertTrue(model)
    if os.path.exists('/proc/cpuinfo'):
      with open('/proc/cpuinfo') as f:
        self.assertIn(f'model name\t: {model}', f.read())

  def test_breakdown_times_each_part_on_the_steps_shapes(self):
    episode = config_lib.EpisodeConfig(3, 1, 2)
    parts = training.step_breakdown_ms(episode, image_size=16, calls=2,
                                        repeats=1)
    self.assertEqual(parts['coordinates'], learner.num_params(
        config_lib.LearnerConfig(num_ways=3, image_size=16)))
    for name in ('learner_forward_backward', 'meta_lstm_forward',
                 'meta_lstm_forward_backward', 'query_forward_backward',
                 'call_overhead'):
      self.assertTrue(np.isfinite(parts[name]) and parts[name] > 0, name)
    # A backward pass cannot be free: forward and backward together take
    # longer than the call overhead alone.
    self.assertGreater(parts['meta_lstm_forward_backward'],
                       parts['call_overhead'])


if __name__ == '__main__':
  tf.test.main()
