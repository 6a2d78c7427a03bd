r"""`python -m meta_lstm_tf.benchmark`: the speed benchmark
(`bin/benchmark.py`), under the name side-by-side tools call it by."""

from meta_lstm_tf.bin.benchmark import main, run

__all__ = ['main', 'run']

if __name__ == '__main__':
  run()
