"""TensorBoard summaries of a training run (WORKDIR/logs/{train,valid}).

Shapes: T inner steps, P learner coordinates.
"""

import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import types


def _flatten(prefix: str, value, out: dict) -> dict:
  if isinstance(value, dict):
    for key, item in value.items():
      _flatten(f'{prefix}{key}.', item, out)
  else:
    key = prefix[:-1]
    if value is None:
      return out
    out[key] = value if isinstance(value, (bool, int, float, str)) else str(
        value)
  return out


class Writer:
  """Writes the run's scalars, histograms, images and hparams."""

  def __init__(self, log_dir: str):
    self.train = tf.summary.create_file_writer(os.path.join(log_dir, 'train'))
    self.valid = tf.summary.create_file_writer(os.path.join(log_dir, 'valid'))

  def hparams(self, config: config_lib.ExperimentConfig) -> None:
    flat = _flatten('', config.to_dict(), {})
    with self.train.as_default():
      hparams_api.hparams(flat)

  def train_scalars(self, step: int, metrics: dict, learning_rate: float,
                    episodes_per_sec: float) -> None:
    """metrics: means over the logging window of the train-step outputs."""
    with self.train.as_default(step=step):
      tf.summary.scalar('meta_loss', metrics['loss'])
      tf.summary.scalar('accuracy', metrics['accuracy'])
      tf.summary.scalar('grad_norm', metrics['grad_norm'])
      tf.summary.scalar('learning_rate', learning_rate)
      tf.summary.scalar('episodes_per_sec', episodes_per_sec)
      for t, value in enumerate(np.asarray(metrics['support_losses'])):
        tf.summary.scalar(f'support_loss_by_inner_step/t{t:02d}', value)
      for name in ('forget_gate_mean', 'input_gate_mean'):
        for t, value in enumerate(np.asarray(metrics[name])):
          tf.summary.scalar(f'{name}/t{t + 1:02d}', value)

  def gate_histograms(self, step: int,
                      result: types.AdaptationResult) -> None:
    """Histograms of the [T, P] gates of one episode, one per inner step."""
    with self.train.as_default(step=step):
      for t in range(result.forget_gates.shape[0]):
        tf.summary.histogram(f'forget_gate/t{t + 1:02d}',
                             result.forget_gates[t])
        tf.summary.histogram(f'input_gate/t{t + 1:02d}',
                             result.input_gates[t])
      tf.summary.histogram('learner_params', result.params)

  def episode_images(self, step: int, episode: types.Episode) -> None:
    with self.train.as_default(step=step):
      tf.summary.image('episode/support', episode.support_images,
                       max_outputs=10)
      tf.summary.image('episode/query', episode.query_images, max_outputs=10)

  def valid_scalars(self, step: int, accuracy: float, ci95: float,
                    loss: float, train_seconds: float) -> None:
    """train_seconds: meta-training time so far (resumes included), so
    curves of runs can be compared against time as well as steps."""
    with self.valid.as_default(step=step):
      tf.summary.scalar('accuracy', accuracy)
      tf.summary.scalar('train_seconds', train_seconds)
      tf.summary.scalar('accuracy_ci95', ci95)
      tf.summary.scalar('meta_loss', loss)

  def flush(self) -> None:
    self.train.flush()
    self.valid.flush()
