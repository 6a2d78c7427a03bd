"""TensorBoard summaries of a training run.

    WORKDIR/logs/        the run's hyperparameters and the metrics that
                         compare runs in TensorBoard's HParams dashboard
                         (`HPARAMS_METRICS`); the dashboard reads each
                         metric's scalar from the subfolder of its group:
    WORKDIR/logs/train/  meta-train scalars, gate histograms, an episode
    WORKDIR/logs/valid/  validation accuracy, its CI, loss, training time
    WORKDIR/logs/test/   the final test of the best checkpoint

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


# (group, tag, display name, dataset type): the scalars by which the HParams
# dashboard compares runs, each read from WORKDIR/logs/<group>/.
HPARAMS_METRICS = (
    ('valid', 'accuracy', 'validation accuracy',
     hparams_api.Metric.VALIDATION),
    ('train', 'meta_loss', 'meta-train loss', hparams_api.Metric.TRAINING),
    ('train', 'accuracy', 'meta-train accuracy', hparams_api.Metric.TRAINING),
    ('test', 'accuracy', 'test accuracy', None),
)


class Writer:
  """Writes the run's scalars, histograms, images and hparams."""

  def __init__(self, log_dir: str):
    self.log_dir = log_dir
    self.train = tf.summary.create_file_writer(os.path.join(log_dir, 'train'))
    self.valid = tf.summary.create_file_writer(os.path.join(log_dir, 'valid'))
    self._test = None  # Made at the test, so logs/test/ means "tested".

  def hparams(self, config: config_lib.ExperimentConfig) -> None:
    """The config's fields as hyperparameters, and `HPARAMS_METRICS`
    declared, in the log directory itself: one HParams session per run,
    whose metrics are its train/, valid/ and test/ scalars."""
    flat = _flatten('', config.to_dict(), {})
    writer = tf.summary.create_file_writer(self.log_dir)
    with writer.as_default():
      hparams_api.hparams_config(
          hparams=[hparams_api.HParam(name) for name in sorted(flat)],
          metrics=[hparams_api.Metric(tag, group=group, display_name=name,
                                      dataset_type=dataset_type)
                   for group, tag, name, dataset_type in HPARAMS_METRICS])
      hparams_api.hparams(flat)
    writer.close()

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

  def test_scalars(self, step: int, accuracy: float, ci95: float,
                   loss: float) -> None:
    """The final test (of the best checkpoint), at the run's last step."""
    if self._test is None:
      self._test = tf.summary.create_file_writer(
          os.path.join(self.log_dir, 'test'))
    with self._test.as_default(step=step):
      tf.summary.scalar('accuracy', accuracy)
      tf.summary.scalar('accuracy_ci95', ci95)
      tf.summary.scalar('meta_loss', loss)

  def flush(self) -> None:
    for writer in (self.train, self.valid, self._test):
      if writer is not None:
        writer.flush()
