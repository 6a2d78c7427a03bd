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


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The binary's flags, on `flag_values`."""
  flags.DEFINE_string('workdir', None,
                                 'Training workdir of the run to test.',
                      flag_values=flag_values)
  flags.DEFINE_enum(
      'episode_classes', None, list(config_lib.EPISODE_CLASSES),
      'Replace the run\'s: any, or within_alphabet (Lake et al.).',
      flag_values=flag_values)
  flags.DEFINE_bool(
      'distinct_drawers', None, 'Replace the run\'s: support and query '
      'drawings by different people (Omniglot, local copy).',
      flag_values=flag_values)
  flags.DEFINE_integer('num_queries', None,
                                      'Queries per class (default the run\'s).',
                       flag_values=flag_values)
  flags.DEFINE_integer('num_shots', None,
                                    'Shots per class (default the run\'s).',
                       flag_values=flag_values)
  flags.DEFINE_bool(
      'transductive', None, 'Replace the run\'s batch-norm protocol: '
      '--transductive normalises the queries with their own batch\'s '
      'statistics (as MAML\'s code), --notransductive with the support '
      'set\'s.', flag_values=flag_values)
  flags.DEFINE_integer(
      'inner_steps', None, 'Replace the run\'s T (0, for a run with '
      '--head_init=prototypes: its prototype classifier alone).',
      flag_values=flag_values)
  flags.DEFINE_integer('test_episodes', 600, 'Episodes.',
                       flag_values=flag_values)
  flags.DEFINE_enum('pool', 'meta_test', list(evaluation.POOLS),
                            'Classes to test on.', flag_values=flag_values)
  flags.DEFINE_string(
      'omniglot_dir', None, 'Where the run\'s Omniglot copy is now, if moved.',
      flag_values=flag_values)
  flags.DEFINE_string(
      'data_root', None, 'Where the run\'s --data_root is now, if moved.',
      flag_values=flag_values)
  flags.DEFINE_string(
      'output', None, 'Result JSON (default WORKDIR/eval_<pool>_<protocol>.json'
      '; empty: none).', flag_values=flag_values)
  cli.define_thread_flags(flag_values)


def main(argv):
  cli.configure_threads(flags.FLAGS)
  result = evaluation.test_workdir(
      flags.FLAGS.workdir, episode_classes=flags.FLAGS.episode_classes,
      distinct_drawers=flags.FLAGS.distinct_drawers,
      num_queries=flags.FLAGS.num_queries, num_shots=flags.FLAGS.num_shots,
      transductive=flags.FLAGS.transductive,
      inner_steps=flags.FLAGS.inner_steps,
      num_episodes=flags.FLAGS.test_episodes,
      pool=flags.FLAGS.pool, omniglot_dir=flags.FLAGS.omniglot_dir,
      data_root=flags.FLAGS.data_root, output=flags.FLAGS.output)
  print(f"{result['pool']} {result['protocol']}: accuracy "
        f"{result['accuracy']:.4f} +- {result['ci95']:.4f} over "
        f"{result['episodes']} episodes ({result['seconds']:.0f} s)")


def run():
  cli.run_binary(main, define_flags, required=('workdir',))


if __name__ == '__main__':
  run()
