r"""`python -m meta_lstm_tf.main`: the main job (`bin/train.py`).

    python -m meta_lstm_tf.main --flagfile=configs/mini.flags

The command the project has always documented; the binary itself lives with
the others in `meta_lstm_tf/bin/`.
"""

from meta_lstm_tf.bin.train import main, run

__all__ = ['main', 'run']

if __name__ == '__main__':
  run()
