"""Workdir layout: atomic writes, the config round trip, the rule registry
and restoring a run."""

import dataclasses
import json
import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from meta_lstm_tf.training import checkpoints
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.rules import meta_lstm
from meta_lstm_tf.rules import meta_sgd
from meta_lstm_tf.rules import sgd


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
    with mock.patch.object(tf.io.gfile, 'rename',
                           side_effect=OSError('disk full')):
      with self.assertRaisesRegex(OSError, 'disk full'):
        workdir_lib.write_atomic(path, 'new')
    with open(path) as f:
      self.assertEqual(f.read(), 'old')
    self.assertEqual(os.listdir(directory), ['results.json'])

  def test_other_file_systems(self):
    directory = f'ram://test_write_atomic_{id(self)}/a'
    path = f'{directory}/results.json'
    workdir_lib.write_json(path, {'x': 1})
    workdir_lib.write_atomic(path, b'{"x": 2}')
    self.assertEqual(workdir_lib.read_json(path), {'x': 2})
    self.assertEqual(tf.io.gfile.listdir(directory), ['results.json'])
    self.assertEqual(workdir_lib.absolute(path), path)
    self.assertFalse(workdir_lib.is_local(path))
    self.assertTrue(workdir_lib.is_local('runs/x'))


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

  def _workdir_of(self, config):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    workdir_lib.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE),
                           config.to_dict())
    return directory

  def test_a_different_experiment_is_refused_naming_the_part(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.assertEqual(
        workdir_lib.check_same_experiment(directory, _config()), [])
    directory = self._workdir_of(_config())
    self.assertEqual(
        workdir_lib.check_same_experiment(directory, _config()), [])
    with self.assertRaisesRegex(
        ValueError, "meta_learner.update_rule: 'meta_lstm' -> 'sgd'"):
      workdir_lib.check_same_experiment(directory, _config('sgd'))

  def test_every_setting_that_changes_the_numbers_is_named(self):
    base = _config()
    directory = self._workdir_of(base)
    changed = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, dataset='image_folder',
                                 data_root='/x', channels=1),
        train=dataclasses.replace(base.train, seed=6, learning_rate=0.01))
    with self.assertRaises(ValueError) as raised:
      workdir_lib.check_same_experiment(directory, changed)
    message = str(raised.exception)
    self.assertIn("data.dataset: 'omniglot' -> 'image_folder'", message)
    self.assertIn('train.seed: 5 -> 6', message)
    self.assertIn('train.learning_rate: 0.001 -> 0.01', message)
    self.assertIn('--allow_config_change', message)
    # Paths and bookkeeping are not the experiment.
    moved = dataclasses.replace(
        base, data=dataclasses.replace(base.data, omniglot_dir='/elsewhere'),
        runtime=dataclasses.replace(base.runtime,
                                    quiet=not base.runtime.quiet,
                                    log_every=7, export=False))
    self.assertEqual(workdir_lib.check_same_experiment(directory, moved), [])
    # With permission the changes are returned (and then recorded).
    changes = workdir_lib.check_same_experiment(directory, changed,
                                                allow_config_change=True)
    self.assertIn(('train.seed', 5, 6), changes)
    workdir_lib.record_config_changes(directory, changes)
    with open(os.path.join(directory, 'config_changes.json')) as f:
      recorded = json.load(f)
    self.assertIn({'field': 'train.seed', 'old': 5, 'new': 6},
                  recorded[0]['changes'])

  def test_a_setting_newer_than_the_run_counts_at_its_default_only(self):
    old = _config().to_dict()
    del old['episode']['augment']  # As written before --augment existed.
    self.assertEqual(workdir_lib.config_changes(old, _config().to_dict()), [])
    augmented = dataclasses.replace(_config(), episode=dataclasses.replace(
        _config().episode, augment=True))
    self.assertEqual(workdir_lib.config_changes(old, augmented.to_dict()),
                     [('episode.augment', None, True)])
    # A field the old run had is compared as before.
    self.assertEqual(
        workdir_lib.config_changes(_config().to_dict(), augmented.to_dict()),
        [('episode.augment', False, True)])

  def test_raising_the_budget_is_allowed_lowering_it_is_not(self):
    base = dataclasses.replace(_config(), train=dataclasses.replace(
        _config().train, max_steps=100, max_train_seconds=60.0))
    directory = self._workdir_of(base)

    def with_budget(**budget):
      return dataclasses.replace(base, train=dataclasses.replace(
          base.train, **budget))

    for budget in (dict(max_steps=200), dict(max_train_seconds=90.0),
                   dict(max_train_seconds=0.0)):
      self.assertNotEmpty(workdir_lib.check_same_experiment(
          directory, with_budget(**budget)), msg=budget)
    for budget, name in ((dict(max_steps=50), 'train.max_steps: 100 -> 50'),
                         (dict(max_train_seconds=30.0),
                          'train.max_train_seconds: 60.0 -> 30.0')):
      with self.assertRaisesRegex(ValueError, name):
        workdir_lib.check_same_experiment(directory, with_budget(**budget))

  def test_finished_results_only_for_the_same_config(self):
    directory = self._workdir_of(_config())
    self.assertIsNone(workdir_lib.finished_results(directory, _config()))
    workdir_lib.write_json(os.path.join(directory, 'results.json'),
                           {'test_accuracy': 0.5})
    self.assertEqual(workdir_lib.finished_results(directory, _config()),
                     {'test_accuracy': 0.5})
    longer = dataclasses.replace(_config(), train=dataclasses.replace(
        _config().train, max_steps=_config().train.max_steps + 1))
    self.assertIsNone(workdir_lib.finished_results(directory, longer))


def _saved_checkpoints(directory, values):
  """A manager's checkpoints of one variable, one per value (ckpt-1...)."""
  variable = tf.Variable(0.0)
  checkpoint = tf.train.Checkpoint(v=variable)
  manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=5)
  for number, value in enumerate(values, 1):
    variable.assign(value)
    manager.save(checkpoint_number=number)
  return variable, checkpoint


class CheckpointStateTest(tf.test.TestCase):

  def test_missing_or_unreadable_state_file_is_an_error_naming_the_files(
      self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.assertEqual(checkpoints.resume_candidates(
        os.path.join(directory, 'none')), [])
    _saved_checkpoints(directory, [1.0, 2.0])
    self.assertEqual(checkpoints.resume_candidates(directory),
                     [os.path.join(directory, 'ckpt-2'),
                      os.path.join(directory, 'ckpt-1')])
    state = os.path.join(directory, 'checkpoint')
    with open(state, 'w') as f:
      f.write('model_checkpoint_path: "ckpt-2"\n}}} not a proto')
    with self.assertRaisesRegex(checkpoints.CheckpointStateError,
                                'unreadable.*ckpt-1, ckpt-2 are present'):
      checkpoints.resume_candidates(directory)
    os.remove(state)
    with self.assertRaisesRegex(checkpoints.CheckpointStateError,
                                'missing but ckpt-1, ckpt-2 are present'):
      checkpoints.resume_candidates(directory)
    variable, checkpoint = _saved_checkpoints(
        tempfile.mkdtemp(dir=self.get_temp_dir()), [])
    del variable
    # A state file naming checkpoints that are gone.
    tf.compat.v1.train.update_checkpoint_state(
        directory, os.path.join(directory, 'ckpt-7'),
        [os.path.join(directory, 'ckpt-2'), os.path.join(directory, 'ckpt-7')])
    with self.assertRaisesRegex(checkpoints.CheckpointStateError,
                                'names ckpt-7, which is not in'):
      checkpoints.restore_newest(checkpoint, directory)

  def test_truncated_latest_falls_back_to_the_previous_one(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    _saved_checkpoints(directory, [1.0, 2.0, 3.0])
    data = os.path.join(directory, 'ckpt-3.data-00000-of-00001')
    with open(data, 'r+b') as f:
      f.truncate(os.path.getsize(data) // 2)
    variable = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=variable)
    with self.assertLogs(level='WARNING') as logs:
      restored = checkpoints.restore_newest(checkpoint, directory)
    self.assertEqual(restored, os.path.join(directory, 'ckpt-2'))
    self.assertEqual(float(variable), 2.0)
    self.assertTrue(any('ckpt-3' in line and 'does not restore' in line
                        for line in logs.output))
    # The state file now lists what restores, so a manager continues there.
    self.assertEqual(tf.train.latest_checkpoint(directory),
                     os.path.join(directory, 'ckpt-2'))
    # Nothing restores: an error naming each failure.
    for name in ('ckpt-1', 'ckpt-2'):
      data = os.path.join(directory, f'{name}.data-00000-of-00001')
      with open(data, 'r+b') as f:
        f.truncate(1)
    with self.assertRaisesRegex(checkpoints.CheckpointStateError,
                                'no checkpoint in .* restores: ckpt-2'):
      checkpoints.restore_newest(checkpoint, directory)

  def test_fresh_directory_restores_nothing(self):
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.0))
    self.assertIsNone(checkpoints.restore_newest(
        checkpoint, tempfile.mkdtemp(dir=self.get_temp_dir())))

  def test_remove_stale_exports(self):
    base = tempfile.mkdtemp(dir=self.get_temp_dir())
    for name in ('1', '.tmp-export-abc'):
      os.makedirs(os.path.join(base, name, 'variables'))
    removed = workdir_lib.remove_stale_exports(base)
    self.assertEqual(removed, [os.path.join(base, '.tmp-export-abc')])
    self.assertEqual(os.listdir(base), ['1'])
    self.assertEqual(workdir_lib.remove_stale_exports(
        os.path.join(base, 'none')), [])


class RuleRegistryTest(tf.test.TestCase):

  def test_each_rule_builds_its_class_with_the_configs_settings(self):
    classes = {'meta_lstm': meta_lstm.MetaLSTMRule,
               'sgd': sgd.SGDRule, 'meta_sgd': meta_sgd.MetaSGDRule}
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
    restored, loaded, path = checkpoints.restore_rule(directory)
    self.assertEqual(loaded, config)
    self.assertIn(workdir_lib.BEST_DIR, path)
    self.assertAllClose(restored.initial_params,
                        np.full(restored.num_coordinates, 0.25))

  def test_no_checkpoint_is_an_error(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    workdir_lib.write_json(os.path.join(directory, workdir_lib.CONFIG_FILE),
                           _config().to_dict())
    with self.assertRaisesRegex(FileNotFoundError, 'no checkpoint'):
      checkpoints.restore_rule(directory)


if __name__ == '__main__':
  tf.test.main()
