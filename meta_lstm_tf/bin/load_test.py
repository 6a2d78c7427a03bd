r"""Load test of the adapt-and-classify SavedModel under concurrent clients
(`benchmarks/load_test.py`); prints one JSON object.

    python -m meta_lstm_tf.bin.load_test --num_threads=8 \
        --requests_per_thread=10            # exports a fresh 5-way model
    python -m meta_lstm_tf.bin.load_test --export_dir=WORKDIR/export/3
"""

import json
import os
import sys
import tempfile

from meta_lstm_tf.bin import verbosity

# Before TensorFlow loads: its C++ INFO and WARNING lines off by default.
verbosity.quiet_tensorflow_by_default(sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

from meta_lstm_tf import runtime
from meta_lstm_tf.benchmarks import load_test
from meta_lstm_tf.bin import cli





def main(argv):
  del argv
  values = flags.FLAGS
  runtime.configure_threads(values.intra_op_threads, values.inter_op_threads)
  with tempfile.TemporaryDirectory() as tmp:
    export_dir = values.export_dir or load_test.fresh_export(
        os.path.join(tmp, 'model'), num_ways=values.num_ways)
    result = load_test.run_load_test(
        export_dir, num_threads=values.num_threads,
        requests_per_thread=values.requests_per_thread,
        bad_fraction=values.bad_fraction,
        queries_per_class=values.queries_per_class, seed=values.seed)
  if not values.export_dir:
    result['export_dir'] = (f'fresh untrained {values.num_ways}-way export '
                            '(default config, default limits)')
  print(json.dumps(result, indent=1, sort_keys=True))


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The binary's flags, on `flag_values`."""
  flags.DEFINE_string('export_dir', None,
                      'An adapt-and-classify version directory; default: '
                      'export a fresh untrained model to a temp dir.',
                      flag_values=flag_values)
  flags.DEFINE_integer('num_ways', 5, 'N of the fresh export.', lower_bound=2,
                       flag_values=flag_values)
  flags.DEFINE_integer('num_threads', 8, 'Concurrent client threads.',
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer('requests_per_thread', 10, 'Requests per thread.',
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_float('bad_fraction', 0.2, 'Share of bad requests.',
                     lower_bound=0.0, upper_bound=1.0, flag_values=flag_values)
  flags.DEFINE_integer('queries_per_class', 5,
                       'Queries per class of a good request.', lower_bound=1,
                       flag_values=flag_values)
  flags.DEFINE_integer('seed', 0, 'Seed of the requests.',
                       flag_values=flag_values)
  flags.DEFINE_integer('intra_op_threads', 1,
                       'TF intra-op threads (TF Serving: '
                       '--tensorflow_intra_op_parallelism).', lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_integer('inter_op_threads', 0,
                       'TF inter-op threads (0: one per core).',
                       lower_bound=0, flag_values=flag_values)


def run():
  cli.run_binary(main, define_flags)


if __name__ == '__main__':
  run()
