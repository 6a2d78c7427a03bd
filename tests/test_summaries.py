"""TensorBoard summaries: the tags and values the run's logs hold."""

import glob
import os
import tempfile

import numpy as np
import tensorflow as tf

from meta_lstm_tf import summaries
from meta_lstm_tf import types


def _scalars(log_dir):
  values = {}
  for path in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == 'scalars':
          values[(value.tag, event.step)] = float(
              tf.make_ndarray(value.tensor))
  return values


def _tags(log_dir):
  tags = set()
  for path in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  return tags


class WriterTest(tf.test.TestCase):

  def test_train_and_valid_scalars(self):
    log_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = summaries.Writer(log_dir)
    metrics = {'loss': 0.5, 'accuracy': 0.75, 'grad_norm': 2.0,
               'support_losses': np.array([1.5, 1.0, 0.25]),
               'forget_gate_mean': np.array([0.9, 0.8]),
               'input_gate_mean': np.array([0.1, 0.2])}
    writer.train_scalars(10, metrics, learning_rate=1e-3,
                         episodes_per_sec=12.5)
    writer.valid_scalars(10, accuracy=0.625, ci95=0.05, loss=0.7,
                         train_seconds=33.0)
    writer.flush()
    train = _scalars(os.path.join(log_dir, 'train'))
    self.assertAlmostEqual(train[('meta_loss', 10)], 0.5)
    self.assertAlmostEqual(train[('accuracy', 10)], 0.75)
    self.assertAlmostEqual(train[('episodes_per_sec', 10)], 12.5)
    self.assertAlmostEqual(train[('support_loss_by_inner_step/t02', 10)],
                           0.25)
    # Gates are numbered by the inner step they come out of (t = 1..T).
    self.assertAlmostEqual(train[('forget_gate_mean/t02', 10)], 0.8)
    self.assertAlmostEqual(train[('input_gate_mean/t01', 10)], 0.1)
    valid = _scalars(os.path.join(log_dir, 'valid'))
    self.assertAlmostEqual(valid[('accuracy', 10)], 0.625)
    self.assertAlmostEqual(valid[('train_seconds', 10)], 33.0)

  def test_gate_histograms_one_per_inner_step(self):
    log_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = summaries.Writer(log_dir)
    gates = tf.fill([3, 4], 0.5)
    result = types.AdaptationResult(
        params=tf.zeros([4]), bn_stats=None, support_losses=tf.zeros([4]),
        forget_gate_mean=tf.zeros([3]), input_gate_mean=tf.zeros([3]),
        forget_gates=gates, input_gates=gates)
    writer.gate_histograms(5, result)
    writer.flush()
    tags = _tags(os.path.join(log_dir, 'train'))
    for t in (1, 2, 3):
      self.assertIn(f'forget_gate/t{t:02d}', tags)
      self.assertIn(f'input_gate/t{t:02d}', tags)
    self.assertNotIn('forget_gate/t04', tags)
    self.assertIn('learner_params', tags)


if __name__ == '__main__':
  tf.test.main()
