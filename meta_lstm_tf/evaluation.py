"""Evaluation on fixed episodes: the seeds, batching, mean and 95% CI.

Shapes: E episodes per evaluation batch.

Training (validation and test), the baselines, the results grid and the
`evaluate` binary all score methods here, on the same episodes: validation
and test episodes come from fixed seeds (`VALID_SEED`, `TEST_SEED`), so runs
are compared on identical episodes whatever their training seed, and the
per-episode accuracies `evaluate` returns allow paired comparisons.
"""

import math
from typing import Callable, List

import numpy as np
import tensorflow as tf

from meta_lstm_tf import types

# Validation and test episodes do not depend on the training seed, so runs
# with different seeds are compared on identical episodes.
VALID_SEED = 20170
TEST_SEED = 20171


def mean_and_ci95(values) -> tuple:
  """Mean and 95% confidence half-width 1.96 * std / sqrt(n)."""
  values = np.asarray(values, np.float64)
  return (float(values.mean()),
          float(1.96 * values.std() / math.sqrt(len(values))))


EVAL_BATCH = 4


def batch_episodes(episodes, batch_size: int = EVAL_BATCH):
  """Groups single episodes into stacked batches (the last may be smaller)."""
  if isinstance(episodes, tf.data.Dataset):
    return list(episodes.batch(batch_size))
  episodes = list(episodes)
  return [tf.nest.map_structure(lambda *x: tf.stack(x),
                                *episodes[i:i + batch_size])
          for i in range(0, len(episodes), batch_size)]


def evaluate(eval_step: Callable, batches: List[types.Episode]) -> dict:
  """Mean query accuracy, its 95% CI and the mean loss over episodes.

  Args:
    eval_step: `train_steps.make_eval_step(...)`.
    batches: episodes stacked in batches (`batch_episodes`).

  Returns:
    dict: `accuracy`, `ci95`, `loss`, `episodes` and `accuracies` (per
    episode, in order: methods scored on the same episodes can be compared
    pairwise).
  """
  accuracies, losses = [], []
  for batch in batches:
    loss, accuracy = eval_step(batch)
    accuracies.extend(accuracy.numpy().tolist())
    losses.extend(loss.numpy().tolist())
  accuracy, ci95 = mean_and_ci95(accuracies)
  return {'accuracy': accuracy, 'ci95': ci95,
          'loss': float(np.mean(losses)), 'episodes': len(accuracies),
          'accuracies': accuracies}
