"""The meta-learning rate over a run: constant, or cosine decay.

A run's progress is the larger of its step fraction (step / `max_steps`) and,
when a time budget is set, its time fraction (meta-training seconds /
`max_train_seconds`): a run bounded by time decays over its time, a run
bounded by steps over its steps, and a resumed run continues where it was.
"""

import math

from meta_lstm_tf import config as config_lib


def progress(train_config: config_lib.TrainConfig, step: int,
             seconds: float) -> float:
  """The fraction of the run done, in [0, 1]."""
  fractions = [step / train_config.max_steps]
  if train_config.max_train_seconds:
    fractions.append(seconds / train_config.max_train_seconds)
  return min(1.0, max(0.0, *fractions))


def learning_rate(train_config: config_lib.TrainConfig,
                  fraction: float) -> float:
  """Adam's learning rate at `fraction` of the run.

  constant: `learning_rate`. cosine: `final + (initial - final) *
  (1 + cos(pi * fraction)) / 2`, from `learning_rate` at 0 to
  `final_learning_rate` at 1.
  """
  initial = train_config.learning_rate
  if train_config.lr_schedule == 'constant':
    return initial
  if train_config.lr_schedule != 'cosine':
    raise ValueError(f'lr_schedule={train_config.lr_schedule!r}: must be one '
                     f'of {config_lib.LR_SCHEDULES}')
  final = train_config.final_learning_rate
  fraction = min(1.0, max(0.0, fraction))
  return final + (initial - final) * 0.5 * (1.0 + math.cos(math.pi * fraction))
