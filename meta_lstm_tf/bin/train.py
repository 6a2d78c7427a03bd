r"""The main job: meta-train, validate, test and export.

    python -m meta_lstm_tf.main --flagfile=configs/mini.flags \
        --workdir=/tmp/meta_lstm_mini

Rerunning the same command resumes from the last checkpoint. Works from
any directory: `--flagfile=configs/...` falls back to the configs installed
with the package (`cli.expand_flagfiles`). Logs warnings and errors;
`--verbosity=0` brings INFO back (`verbosity.py`).
"""

import sys

from meta_lstm_tf.bin import verbosity

# Before TensorFlow loads: its C++ INFO and WARNING lines off by default.
verbosity.quiet_tensorflow_by_default(sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

from meta_lstm_tf.bin import cli
from meta_lstm_tf.training import train_lib


def main(argv):
  cli.configure_threads(flags.FLAGS)
  try:
    config = cli.config_from_flags(flags.FLAGS)
  except ValueError as e:
    raise app.UsageError(f'bad flag: --{e}') from None
  results = train_lib.train_and_evaluate(
      config, flags.FLAGS.workdir, cli.flags_as_text(flags.FLAGS),
      allow_config_change=flags.FLAGS.allow_config_change)
  print(f"test accuracy {results['test_accuracy']:.4f} "
        f"+- {results['test_ci95']:.4f} over {results['test_episodes']} "
        f"episodes; results in {flags.FLAGS.workdir}/results.json")


def run():
  cli.run_binary(main, cli.define_flags, required=('workdir',))


if __name__ == '__main__':
  run()
