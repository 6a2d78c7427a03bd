r"""Writes the golden run directory that `tests/test_checkpoints.py` restores.

    PYTHONPATH=<a checkout of the release> python tests/golden/make_checkpoint.py \
        tests/golden/<release>

Run once per release whose checkpoints must keep restoring, with that
release's code on PYTHONPATH; commit, as text, its config.json and the keys
and shapes of what it wrote (`checkpoint_keys.json`, from
`tf.train.list_variables` of checkpoints/ and best/), not the binary
checkpoint files. `tests/test_checkpoints.py` writes the same directory
with today's code and checks the keys, shapes and config layout against
each release's, as Sonnet's conformance checkpoints do. The
script uses only what every release has: its run-state builder, Keras's Adam, a
`tf.train.Checkpoint` laid out as the release's training writes it (taken
from the release itself where it has a function for it), `to_dict()`.

Every meta-parameter gets known values (`expected.npz`, by attribute name),
and the run's counters known numbers, so the test can tell a restore from
a fresh initialisation.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib

COUNTERS = {'step': 1234, 'best_valid_accuracy': 0.625, 'best_step': 1000,
            'train_seconds': 42.5}
OPTIMIZER_ITERATIONS = 7


def golden_config() -> config_lib.ExperimentConfig:
  """A tiny meta-LSTM (2-way, 8x8 images, 2 filters, 1 block)."""
  return config_lib.ExperimentConfig(
      data=config_lib.DataConfig(image_size=8),
      episode=config_lib.EpisodeConfig(num_ways=2, num_shots=1,
                                       num_queries=1),
      learner=config_lib.LearnerConfig(num_ways=2, num_filters=2,
                                       num_blocks=1, image_size=8),
      meta_learner=config_lib.MetaLearnerConfig(hidden_size=2,
                                                gate_bias='per_tensor'))


def rule_variables(rule) -> dict:
  """{attribute: variable} of the rule's own weights."""
  return {name: value for name, value in sorted(vars(rule).items())
          if hasattr(value, 'assign') and hasattr(value, 'shape')}


def _run_state(config):
  """(rule, optimizer, state, best) as the release's training builds them."""
  if hasattr(config_lib, 'RuntimeConfig'):  # After the issue-23 layout.
    from meta_lstm_tf.training import checkpoints  # pylint: disable=g-import-not-at-top
    rule, optimizer, state = checkpoints.make_run_state(
        config, tf.distribute.get_strategy())
    return rule, optimizer, state, checkpoints.rule_checkpoint(rule)
  else:  # 0.1 as of 2026-12-01: train_lib at the top level.
    from meta_lstm_tf import train_lib  # pylint: disable=g-import-not-at-top
    rule, optimizer, state = train_lib._make_run_state(  # pylint: disable=protected-access
        config, tf.distribute.get_strategy())
    return rule, optimizer, state, tf.train.Checkpoint(layer=rule)


def main(out_dir: str) -> None:
  config = golden_config().validate()
  rule, optimizer, state, best = _run_state(config)
  rng = np.random.default_rng(20261202)
  expected = {}
  for name, variable in rule_variables(rule).items():
    value = rng.uniform(-1, 1, size=variable.shape).astype(np.float32)
    variable.assign(value)
    expected[name] = value
  for name, value in COUNTERS.items():
    getattr(state, name).assign(value)
  optimizer.iterations.assign(OPTIMIZER_ITERATIONS)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'config.json'), 'w') as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)
  np.savez(os.path.join(out_dir, 'expected.npz'), **expected)
  tf.train.CheckpointManager(state, os.path.join(out_dir, 'checkpoints'),
                             max_to_keep=1).save(COUNTERS['step'])
  tf.train.CheckpointManager(best, os.path.join(out_dir, 'best'),
                             max_to_keep=1).save(COUNTERS['best_step'])


if __name__ == '__main__':
  main(sys.argv[1])
