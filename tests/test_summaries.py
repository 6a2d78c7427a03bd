"""TensorBoard summaries: the tags and values the run's logs hold."""

import os
import tempfile

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import metadata as hparams_metadata

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import summaries
from meta_lstm_tf import types
from tests.fixtures import summaries as event_files


class WriterTest(tf.test.TestCase):

  def test_hparams_declare_the_metrics_of_the_run_folders(self):
    log_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = summaries.Writer(log_dir)
    config = config_lib.ExperimentConfig()
    writer.hparams(config)
    writer.flush()
    data = event_files.hparams_data(log_dir)
    self.assertEqual(event_files.declared_metrics(log_dir),
                     {('valid', 'accuracy'), ('train', 'meta_loss'),
                      ('train', 'accuracy'), ('test', 'accuracy')})
    experiment = data[hparams_metadata.EXPERIMENT_TAG].experiment
    by_tag = {(m.name.group, m.name.tag): m for m in experiment.metric_infos}
    self.assertEqual(by_tag[('valid', 'accuracy')].dataset_type,
                     hparams_api.Metric.VALIDATION)
    self.assertEqual(by_tag[('test', 'accuracy')].display_name,
                     'test accuracy')
    self.assertIn('train.learning_rate',
                  {h.name for h in experiment.hparam_infos})
    session = data[hparams_metadata.SESSION_START_INFO_TAG].session_start_info
    self.assertAlmostEqual(session.hparams['train.learning_rate'].number_value,
                           config.train.learning_rate)
    self.assertEqual(session.hparams['meta_learner.update_rule'].string_value,
                     'meta_lstm')
    # The session is the log directory itself, not one of its metric runs.
    self.assertEmpty(event_files.hparams_data(os.path.join(log_dir, 'train')))

  def test_test_scalars(self):
    log_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    writer = summaries.Writer(log_dir)
    self.assertFalse(os.path.exists(os.path.join(log_dir, 'test')))
    writer.test_scalars(12, accuracy=0.8125, ci95=0.01, loss=0.4)
    writer.flush()
    test = event_files.scalars(os.path.join(log_dir, 'test'))
    self.assertAlmostEqual(test[('accuracy', 12)], 0.8125)
    self.assertAlmostEqual(test[('accuracy_ci95', 12)], 0.01)

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
    train = event_files.scalars(os.path.join(log_dir, 'train'))
    self.assertAlmostEqual(train[('meta_loss', 10)], 0.5)
    self.assertAlmostEqual(train[('accuracy', 10)], 0.75)
    self.assertAlmostEqual(train[('episodes_per_sec', 10)], 12.5)
    self.assertAlmostEqual(train[('support_loss_by_inner_step/t02', 10)],
                           0.25)
    # Gates are numbered by the inner step they come out of (t = 1..T).
    self.assertAlmostEqual(train[('forget_gate_mean/t02', 10)], 0.8)
    self.assertAlmostEqual(train[('input_gate_mean/t01', 10)], 0.1)
    valid = event_files.scalars(os.path.join(log_dir, 'valid'))
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
    tags = event_files.tags(os.path.join(log_dir, 'train'))
    for t in (1, 2, 3):
      self.assertIn(f'forget_gate/t{t:02d}', tags)
      self.assertIn(f'input_gate/t{t:02d}', tags)
    self.assertNotIn('forget_gate/t04', tags)
    self.assertIn('learner_params', tags)


if __name__ == '__main__':
  tf.test.main()
