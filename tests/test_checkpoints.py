"""Checkpoints keep the layout earlier releases wrote, so their runs restore.

tests/golden/<release>/ holds, as text, what `tests/golden/make_checkpoint.py`
wrote with that release's own code: config.json (that release's layout) and
checkpoint_keys.json (every key and shape of its resume state under
checkpoints/ and of its best rule under best/). The tests write the same
run directory with today's code and check that its keys and shapes are the
release's, and that it restores (values, counters).
"""

import json
import os

import numpy as np
import tensorflow as tf

from meta_lstm_tf.training import checkpoints
from meta_lstm_tf.training import workdir as workdir_lib
from tests.golden import make_checkpoint

_GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
# Every release whose checkpoints must keep restoring.
RELEASES = ('v0_1_2026_12_01',)
_DIRS = (workdir_lib.CHECKPOINT_DIR, workdir_lib.BEST_DIR)


def _keys(directory: str) -> dict:
  """{checkpoints|best: sorted [key, shape]} of a run directory."""
  return {name: sorted([key, list(shape)] for key, shape in
                       tf.train.list_variables(tf.train.latest_checkpoint(
                           os.path.join(directory, name))))
          for name in _DIRS}


class GoldenCheckpointTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.run_dir = os.path.join(self.get_temp_dir(), 'run')
    make_checkpoint.main(self.run_dir)  # Today's code.

  def test_keys_and_shapes_are_each_releases(self):
    written = _keys(self.run_dir)
    for release in RELEASES:
      with open(os.path.join(_GOLDEN, release, 'checkpoint_keys.json')) as f:
        self.assertEqual(written, json.load(f), release)
    self.assertTrue(any(key.startswith(checkpoints.RULE_KEY + '/')
                        for key, _ in written['best']))

  def test_the_config_of_each_release_reads_as_the_same_experiment(self):
    for release in RELEASES:
      directory = os.path.join(_GOLDEN, release)
      config = workdir_lib.load_config(directory)
      self.assertEqual(config, make_checkpoint.golden_config())
      previous = workdir_lib.read_json(
          os.path.join(directory, workdir_lib.CONFIG_FILE))
      self.assertEqual(workdir_lib.config_changes(
          previous, make_checkpoint.golden_config().to_dict()), [])

  def _expected(self) -> dict:
    with np.load(os.path.join(self.run_dir, 'expected.npz')) as values:
      return dict(values)

  def test_resume_state_restores(self):
    config = workdir_lib.load_config(self.run_dir)
    rule, optimizer, state = checkpoints.make_run_state(
        config, tf.distribute.get_strategy())
    fresh = {name: variable.numpy() for name, variable in
             make_checkpoint.rule_variables(rule).items()}
    restored = checkpoints.restore_newest(
        state, os.path.join(self.run_dir, workdir_lib.CHECKPOINT_DIR))
    self.assertEndsWith(restored, 'ckpt-1234')
    expected = self._expected()
    variables = make_checkpoint.rule_variables(rule)
    self.assertCountEqual(variables, expected)
    for name, variable in variables.items():
      self.assertAllEqual(variable, expected[name], msg=name)
      self.assertNotAllClose(fresh[name], expected[name], msg=name)
    for name, value in make_checkpoint.COUNTERS.items():
      self.assertEqual(float(getattr(state, name)), value, name)
    self.assertEqual(int(optimizer.iterations),
                     make_checkpoint.OPTIMIZER_ITERATIONS)

  def test_best_rule_restores(self):
    rule, config, checkpoint = checkpoints.restore_rule(self.run_dir)
    self.assertEqual(config.learner.num_filters, 2)
    self.assertEndsWith(checkpoint, 'ckpt-1000')
    expected = self._expected()
    for name, variable in make_checkpoint.rule_variables(rule).items():
      self.assertAllEqual(variable, expected[name], msg=name)


if __name__ == '__main__':
  tf.test.main()
