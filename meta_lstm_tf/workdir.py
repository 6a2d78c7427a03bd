"""Layout of a training workdir, and restoring a trained meta-learner from it.

    WORKDIR/config.json       the ExperimentConfig of the run
    WORKDIR/flags.txt         the command-line flags of the run
    WORKDIR/checkpoints/      tf.train.CheckpointManager: rule, optimizer,
                              step, best validation accuracy (resume state)
    WORKDIR/best/             the best checkpoint by validation accuracy
                              (rule only)
    WORKDIR/logs/             TensorBoard
    WORKDIR/pretrain/         the pretraining of --init_from=pretrained
                              (`baselines.pretrain`)
    WORKDIR/results.json      final test metrics
    WORKDIR/export/<version>/ adapt-and-classify SavedModel for TF Serving
    WORKDIR/export_adapted_learner/<version>/
                              adapted-learner SavedModels (meta-lstm-export)
"""

import json
import os
import tempfile
from typing import Optional, Tuple, Union

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules

CONFIG_FILE = 'config.json'
FLAGS_FILE = 'flags.txt'
RESULTS_FILE = 'results.json'
CHECKPOINT_DIR = 'checkpoints'
BEST_DIR = 'best'
LOG_DIR = 'logs'
EXPORT_DIR = 'export'
PRETRAIN_DIR = 'pretrain'


def write_atomic(path: str, data: Union[str, bytes]) -> None:
  """Writes text or bytes to path atomically (temporary file + rename)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
  try:
    with os.fdopen(fd, 'wb' if isinstance(data, bytes) else 'w') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, value) -> None:
  write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def config_from_dict(value: dict) -> config_lib.ExperimentConfig:
  """Inverse of `ExperimentConfig.to_dict()`."""
  parts = {}
  for field, cls in (('data', config_lib.DataConfig),
                     ('episode', config_lib.EpisodeConfig),
                     ('learner', config_lib.LearnerConfig),
                     ('meta_learner', config_lib.MetaLearnerConfig),
                     ('inner_loop', config_lib.InnerLoopConfig),
                     ('train', config_lib.TrainConfig)):
    kwargs = dict(value.get(field, {}))
    for key, item in kwargs.items():
      if isinstance(item, list):
        kwargs[key] = tuple(item)
    parts[field] = cls(**kwargs)
  return config_lib.ExperimentConfig(**parts)


def load_config(workdir: str) -> config_lib.ExperimentConfig:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir!r} a training '
                            'workdir?')
  with open(path) as f:
    return config_from_dict(json.load(f))


def check_same_experiment(workdir: str,
                          config: config_lib.ExperimentConfig) -> None:
  """Refuses to resume a run of a different experiment in `workdir`.

  Raises:
    ValueError: the workdir's config.json differs from `config` in the
      episodes, learner, meta-learner or inner loop, naming the part.
  """
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    return
  previous = load_config(workdir)
  for part in ('episode', 'learner', 'meta_learner', 'inner_loop'):
    if getattr(previous, part) != getattr(config, part):
      raise ValueError(
          f'workdir={workdir!r} holds a run with a different '
          f'{part} config ({getattr(previous, part)} vs '
          f'{getattr(config, part)}); use a new --workdir')


def restore_rule(workdir: str, checkpoint: Optional[str] = None
                 ) -> Tuple[rules.UpdateRule, config_lib.ExperimentConfig,
                            str]:
  """Restores the update rule (the meta-learner) of a training run.

  Checkpoints hold it under the key `rule` (the name runs have always
  written), so older runs restore too.

  Args:
    workdir: the training workdir.
    checkpoint: a checkpoint prefix; default the best checkpoint, else the
      latest training checkpoint.

  Returns:
    (rule, config, checkpoint path restored).
  """
  config = load_config(workdir)
  rule = rules.make_rule(config)
  if checkpoint is None:
    checkpoint = (tf.train.latest_checkpoint(os.path.join(workdir, BEST_DIR)) or
                  tf.train.latest_checkpoint(
                      os.path.join(workdir, CHECKPOINT_DIR)))
  if checkpoint is None:
    raise FileNotFoundError(f'no checkpoint in {workdir!r}')
  tf.train.Checkpoint(layer=rule).read(checkpoint).expect_partial()
  return rule, config, checkpoint
