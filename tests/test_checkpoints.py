"""Checkpoints of earlier releases restore: the golden run directories in
tests/golden/ (written by `tests/golden/make_checkpoint.py` with each
release's own code) against today's code."""

import os
import shutil

import numpy as np
import tensorflow as tf

from meta_lstm_tf.training import checkpoints
from meta_lstm_tf.training import workdir as workdir_lib
from tests.golden import make_checkpoint

_GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
# Every release whose checkpoints must keep restoring.
RELEASES = ('v0_1_2026_12_01',)


class GoldenCheckpointTest(tf.test.TestCase):

  def _copy(self, release: str) -> str:
    directory = os.path.join(self.get_temp_dir(), release)
    shutil.copytree(os.path.join(_GOLDEN, release), directory)
    return directory

  def _expected(self, directory: str) -> dict:
    with np.load(os.path.join(directory, 'expected.npz')) as values:
      return dict(values)

  def test_the_config_of_each_release_reads_as_the_same_experiment(self):
    for release in RELEASES:
      directory = self._copy(release)
      config = workdir_lib.load_config(directory)
      self.assertEqual(config, make_checkpoint.golden_config())
      previous = workdir_lib.read_json(
          os.path.join(directory, workdir_lib.CONFIG_FILE))
      self.assertEqual(workdir_lib.config_changes(
          previous, make_checkpoint.golden_config().to_dict()), [])

  def test_resume_state_of_each_release_restores(self):
    for release in RELEASES:
      directory = self._copy(release)
      config = workdir_lib.load_config(directory)
      rule, optimizer, state = checkpoints.make_run_state(
          config, tf.distribute.get_strategy())
      fresh = {name: variable.numpy() for name, variable in
               make_checkpoint.rule_variables(rule).items()}
      restored = checkpoints.restore_newest(
          state, os.path.join(directory, workdir_lib.CHECKPOINT_DIR))
      self.assertEndsWith(restored, 'ckpt-1234')
      expected = self._expected(directory)
      variables = make_checkpoint.rule_variables(rule)
      self.assertCountEqual(variables, expected)
      for name, variable in variables.items():
        self.assertAllEqual(variable, expected[name], msg=name)
        self.assertNotAllClose(fresh[name], expected[name], msg=name)
      for name, value in make_checkpoint.COUNTERS.items():
        self.assertEqual(float(getattr(state, name)), value, name)
      self.assertEqual(int(optimizer.iterations),
                       make_checkpoint.OPTIMIZER_ITERATIONS)

  def test_best_rule_of_each_release_restores(self):
    for release in RELEASES:
      directory = self._copy(release)
      rule, config, checkpoint = checkpoints.restore_rule(directory)
      self.assertEqual(config.learner.num_filters, 2)
      self.assertEndsWith(checkpoint, 'ckpt-1000')
      expected = self._expected(directory)
      for name, variable in make_checkpoint.rule_variables(rule).items():
        self.assertAllEqual(variable, expected[name], msg=name)

  def test_the_rule_key_is_the_one_releases_wrote(self):
    # `rule_checkpoint` is the one place that names the key.
    reader = tf.train.load_checkpoint(os.path.join(
        _GOLDEN, RELEASES[0], workdir_lib.BEST_DIR, 'ckpt-1000'))
    keys = reader.get_variable_to_shape_map()
    self.assertTrue(any(k.startswith(checkpoints.RULE_KEY + '/')
                        for k in keys), sorted(keys))
    checkpoint = checkpoints.rule_checkpoint(tf.Variable(1.0))
    self.assertEqual(
        [name for name, _ in checkpoint._checkpoint_dependencies],  # pylint: disable=protected-access
        [checkpoints.RULE_KEY])


if __name__ == '__main__':
  tf.test.main()
