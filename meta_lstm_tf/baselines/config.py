"""Settings of the non-meta baselines: their pretraining and fine-tuning."""

import dataclasses

import numpy as np


def _fail(field: str, value, requirement: str) -> None:
  raise ValueError(f'{field}={value!r}: {requirement}')


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
  """Pretraining and fine-tuning settings of the baselines.

  Attributes:
    pretrain_steps: Adam steps of the C-way pretraining.
    pretrain_seconds: also stop the pretraining after this many seconds of
      training (0: no time limit).
    batch_size: B, images per pretraining step.
    learning_rate: Adam's learning rate for the pretraining.
    finetune_learning_rates: the SGD learning rates fine-tuning chooses from.
    finetune_steps: the step counts fine-tuning chooses from.
    selection_episodes: meta-valid episodes the choice of learning rate and
      steps is made on (also what `valid_accuracy` is measured on).
    seed: seed of the initial parameters and of the pretraining batches.
  """
  pretrain_steps: int = 3000
  pretrain_seconds: float = 0.0
  batch_size: int = 64
  learning_rate: float = 1e-3
  finetune_learning_rates: tuple = (0.01, 0.05, 0.2, 0.5)
  finetune_steps: tuple = (5, 20, 50)
  selection_episodes: int = 100
  seed: int = 0

  def validate(self) -> 'BaselineConfig':
    for name in ('pretrain_steps', 'batch_size', 'selection_episodes'):
      value = getattr(self, name)
      if not (_is_int(value) and value > 0):
        _fail(name, value, 'must be a positive integer')
    if not (isinstance(self.pretrain_seconds, (int, float)) and
            self.pretrain_seconds >= 0):
      _fail('pretrain_seconds', self.pretrain_seconds,
            'must be >= 0 (0 means no limit)')
    if not (isinstance(self.learning_rate, (int, float)) and
            self.learning_rate > 0):
      _fail('learning_rate', self.learning_rate, 'must be > 0')
    rates = self.finetune_learning_rates
    if (not isinstance(rates, (tuple, list)) or not rates or
        not all(isinstance(r, (int, float)) and not isinstance(r, bool) and
                r > 0 for r in rates)):
      _fail('finetune_learning_rates', rates,
            'must be a non-empty tuple of numbers > 0')
    steps = self.finetune_steps
    if (not isinstance(steps, (tuple, list)) or not steps or
        not all(_is_int(s) and s > 0 for s in steps)):
      _fail('finetune_steps', steps,
            'must be a non-empty tuple of positive integers')
    if not (_is_int(self.seed) and self.seed >= 0):
      _fail('seed', self.seed, 'must be a non-negative integer')
    return self
