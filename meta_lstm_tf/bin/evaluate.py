r"""Tests a finished run again, e.g. under Lake et al.'s one-shot protocol.

    python -m meta_lstm_tf.bin.evaluate --workdir=runs/mini_20w1s \
        --episode_classes=within_alphabet --distinct_drawers \
        --output=/tmp/lake.json

Restores the run's best checkpoint and scores it on fixed meta-test episodes
(`evaluation.test_workdir`); nothing is trained. Writes the result to
--output (default WORKDIR/eval_<pool>_<protocol>.json) and prints it.
"""

import sys

from meta_lstm_tf.bin import verbosity

# Before TensorFlow loads: its C++ INFO and WARNING lines off by default.
verbosity.quiet_tensorflow_by_default(sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation

_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Training workdir of the run to test.')
_EPISODE_CLASSES = flags.DEFINE_enum(
    'episode_classes', None, list(config_lib.EPISODE_CLASSES),
    'Replace the run\'s: any, or within_alphabet (Lake et al.).')
_DISTINCT_DRAWERS = flags.DEFINE_bool(
    'distinct_drawers', None, 'Replace the run\'s: support and query '
    'drawings by different people (Omniglot, local copy).')
_NUM_QUERIES = flags.DEFINE_integer('num_queries', None,
                                    'Queries per class (default the run\'s).')
_NUM_SHOTS = flags.DEFINE_integer('num_shots', None,
                                  'Shots per class (default the run\'s).')
_TRANSDUCTIVE = flags.DEFINE_bool(
    'transductive', None, 'Replace the run\'s batch-norm protocol: '
    '--transductive normalises the queries with their own batch\'s '
    'statistics (as MAML\'s code), --notransductive with the support '
    'set\'s.')
_EPISODES = flags.DEFINE_integer('test_episodes', 600, 'Episodes.')
_POOL = flags.DEFINE_enum('pool', 'meta_test', list(evaluation.POOLS),
                          'Classes to test on.')
_OMNIGLOT_DIR = flags.DEFINE_string(
    'omniglot_dir', None, 'Where the run\'s Omniglot copy is now, if moved.')
_DATA_ROOT = flags.DEFINE_string(
    'data_root', None, 'Where the run\'s --data_root is now, if moved.')
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Result JSON (default WORKDIR/eval_<pool>_<protocol>.json'
    '; empty: none).')


def main(argv):
  result = evaluation.test_workdir(
      _WORKDIR.value, episode_classes=_EPISODE_CLASSES.value,
      distinct_drawers=_DISTINCT_DRAWERS.value,
      num_queries=_NUM_QUERIES.value, num_shots=_NUM_SHOTS.value,
      transductive=_TRANSDUCTIVE.value, num_episodes=_EPISODES.value,
      pool=_POOL.value, omniglot_dir=_OMNIGLOT_DIR.value,
      data_root=_DATA_ROOT.value, output=_OUTPUT.value)
  print(f"{result['pool']} {result['protocol']}: accuracy "
        f"{result['accuracy']:.4f} +- {result['ci95']:.4f} over "
        f"{result['episodes']} episodes ({result['seconds']:.0f} s)")


def run():
  flags.mark_flag_as_required('workdir')
  cli.run_binary(main)


if __name__ == '__main__':
  run()
