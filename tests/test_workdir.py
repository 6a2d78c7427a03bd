"""Workdir layout: atomic writes, the config round trip, the rule registry
and restoring a run."""

import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules
from meta_lstm_tf import workdir as workdir_lib
from meta_lstm_tf.rules import meta_lstm as meta_lstm_layer
from meta_lstm_tf.rules import meta_sgd as meta_sgd_rule
from meta_lstm_tf.rules import sgd as sgd_rule


def _config(rule='meta_lstm', **meta):
  return config_lib.ExperimentConfig(
      data=config_lib.DataConfig(image_size=8),
      episode=config_lib.EpisodeConfig(3, 1, 2),
      learner=config_lib.LearnerConfig(num_ways=3, num_filters=2,
                                       num_blocks=1, image_size=8),
      meta_learner=config_lib.MetaLearnerConfig(update_rule=rule,
                                                hidden_size=3, **meta),
      train=config_lib.TrainConfig(seed=5)).validate()


class WriteAtomicTest(tf.test.TestCase):

  def test_text_and_bytes_replace_the_file(self):
    path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), 'a', 'f')
    workdir_lib.write_atomic(path, 'one')
    workdir_lib.write_atomic(path, b'\x00two')
    with open(path, 'rb') as f:
      self.assertEqual(f.read(), b'\x00two')

  def test_a_failed_write_leaves_the_old_file_and_no_temporary(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    path = os.path.join(directory, 'results.json')
    workdir_lib.write_atomic(path, 'old')
    with mock.patch.object(os, 'replace', side_effect=OSError('disk full')):
      with self.assertRaisesRegex(OSError, 'disk full'):
        workdir_lib.write_atomic(path, 'new')
    with open(path) as f:
      self.assertEqual(f.read(), 'old')
    self.assertEqual(os.listdir(directory), ['results.json'])


class ConfigRoundTripTest(tf.test.TestCase):

  def test_saved_config_loads_back_equal(self):
    config = _config('meta_lstm', gate_bias='per_tensor', gate_bias_scale=3.0)
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    workdir_lib.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE),
                           config.to_dict())
    self.assertEqual(workdir_lib.load_config(directory), config)

  def test_missing_config_names_the_file(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    with self.assertRaisesRegex(FileNotFoundError, 'config.json not found'):
      workdir_lib.load_config(directory)


class SameExperimentTest(tf.test.TestCase):

  def test_a_different_experiment_is_refused_naming_the_part(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    workdir_lib.check_same_experiment(directory, _config())  # No run yet.
    workdir_lib.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE),
                           _config().to_dict())
    workdir_lib.check_same_experiment(directory, _config())
    with self.assertRaisesRegex(ValueError, 'different meta_learner config'):
      workdir_lib.check_same_experiment(directory, _config('sgd'))


class RuleRegistryTest(tf.test.TestCase):

  def test_each_rule_builds_its_class_with_the_configs_settings(self):
    classes = {'meta_lstm': meta_lstm_layer.MetaLSTMLayer,
               'sgd': sgd_rule.SGDRule, 'meta_sgd': meta_sgd_rule.MetaSGDRule}
    self.assertEqual(set(rules.RULES),
                     set(config_lib.UPDATE_RULES))
    for rule, cls in classes.items():
      made = rules.make_rule(_config(rule))
      self.assertIsInstance(made, cls)
      self.assertEqual(made.name, rule)
      self.assertEqual(made.seed, 5)
      self.assertEqual(made.learner_config, _config(rule).learner)
    self.assertEqual(rules.make_rule(_config()).hidden_size, 3)

  def test_same_seed_same_initialisation(self):
    a = rules.make_rule(_config())
    b = rules.make_rule(_config())
    for x, y in zip(a.variables, b.variables):
      self.assertAllEqual(x, y)


class RestoreTest(tf.test.TestCase):

  def test_restores_the_best_checkpoint(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    config = _config()
    workdir_lib.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE),
                           config.to_dict())
    trained = rules.make_rule(config)
    trained.initial_params.assign(np.full(trained.num_coordinates, 0.25,
                                          np.float32))
    tf.train.Checkpoint(layer=trained).write(
        os.path.join(directory, workdir_lib.BEST_DIR, 'ckpt-7'))
    # tf.train.latest_checkpoint reads the index the managers write.
    tf.train.CheckpointManager(
        tf.train.Checkpoint(layer=trained),
        os.path.join(directory, workdir_lib.BEST_DIR), 1).save(7)
    restored, loaded, path = workdir_lib.restore_rule(directory)
    self.assertEqual(loaded, config)
    self.assertIn(workdir_lib.BEST_DIR, path)
    self.assertAllClose(restored.initial_params,
                        np.full(restored.num_coordinates, 0.25))

  def test_no_checkpoint_is_an_error(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    workdir_lib.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE),
                           _config().to_dict())
    with self.assertRaisesRegex(FileNotFoundError, 'no checkpoint'):
      workdir_lib.restore_rule(directory)


if __name__ == '__main__':
  tf.test.main()
