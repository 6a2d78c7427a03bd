"""Evaluation on fixed episodes: the seeds, the compiled evaluation step,
batching, mean and 95% CI, and retesting a finished run.

Shapes: E episodes per evaluation batch; N ways (fixed by the model), K
shots, Q queries per class.

Training (validation and test), the baselines, the results grid, the
benchmarks and the `evaluate` binary all score methods here, on the same
episodes: validation and test episodes come from fixed seeds (`VALID_SEED`,
`TEST_SEED`), so runs are compared on identical episodes whatever their
training seed, and the per-episode accuracies `evaluate` returns allow paired
comparisons.

`test_workdir` restores a training workdir's best checkpoint and scores it
on fixed episodes of its meta-test (or meta-valid) classes, with the episode
options replaced: Lake et al.'s one-shot protocol (`within_alphabet`,
`distinct_drawers`), another number of queries or episodes, the transductive
batch-norm protocol. Nothing is trained and nothing in the workdir changes
except, by default, the one result file eval_<pool>_<protocol>.json.
"""

import dataclasses
import math
import os
import time
from typing import Callable, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from meta_lstm_tf.training import checkpoints
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import rules
from meta_lstm_tf import types
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.training import workdir as workdir_lib

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
    eval_step: `make_eval_step(...)`.
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


def make_eval_step(rule: rules.UpdateRule,
                   inner_config: config_lib.InnerLoopConfig,
                   jit_compile: bool = False):
  """Builds the compiled evaluation step.

  The step takes a batch of E episodes (leading axis) and returns per-episode
  (loss [E], accuracy [E]). The E adaptations are independent, so the runtime
  overlaps them on the available cores. Uses non-transductive batch norm (the
  episode's running support statistics) unless `inner_config.transductive`.
  """

  def step(episodes: types.Episode):
    losses, accuracies, _ = inner_loop.meta_batch_losses(rule, episodes, inner_config,
                                               training=False)
    return tf.stack(losses), tf.stack(accuracies)

  return tf.function(step, jit_compile=jit_compile)


def make_diagnostics_step(rule: rules.UpdateRule,
                          inner_config: config_lib.InnerLoopConfig):
  """Builds a step that also returns the full [T, P] gates, for histograms."""

  def step(episode: types.Episode):
    _, _, result = inner_loop.episode_loss(rule, episode, inner_config, training=False,
                                record_gates=True)
    return result

  return tf.function(step)


# Retesting a finished run under another protocol (`bin/evaluate.py`).

POOLS = ('meta_test', 'meta_valid')
_SEEDS = {'meta_test': TEST_SEED,
          'meta_valid': VALID_SEED}


def protocol_name(episode: config_lib.EpisodeConfig,
                  transductive: bool = False,
                  inner_steps: Optional[int] = None) -> str:
  """e.g. 'within_alphabet_distinct_drawers', 'any', 'any_transductive',
  'any_T0' (`inner_steps`: a T other than the run's)."""
  name = episode.episode_classes
  name += '_distinct_drawers' if episode.distinct_drawers else ''
  name += '_transductive' if transductive else ''
  return name + (f'_T{inner_steps}' if inner_steps is not None else '')


def default_output(workdir: str, episode: config_lib.EpisodeConfig,
                   pool: str, transductive: bool = False,
                   inner_steps: Optional[int] = None) -> str:
  name = protocol_name(episode, transductive, inner_steps)
  return os.path.join(workdir, f'eval_{pool}_{name}.json')


def _retest_config(config: config_lib.ExperimentConfig, episode_changes: dict,
                   inner_changes: dict, omniglot_dir: Optional[str],
                   data_root: Optional[str]) -> config_lib.ExperimentConfig:
  """The run's config with the retest's changes (None values: keep)."""
  def changed(part, changes):
    return dataclasses.replace(
        part, **{k: v for k, v in changes.items() if v is not None})

  data = config.data
  if omniglot_dir:
    data = dataclasses.replace(data, omniglot_dir=os.path.abspath(
        os.path.expanduser(omniglot_dir)))
  if data_root:
    data = dataclasses.replace(data, data_root=os.path.abspath(
        os.path.expanduser(data_root)))
  return dataclasses.replace(
      config, data=data,
      episode=changed(config.episode, episode_changes).validate(),
      inner_loop=changed(config.inner_loop, inner_changes)).validate()


def test_workdir(workdir: str, *,
                 episode_classes: Optional[str] = None,
                 distinct_drawers: Optional[bool] = None,
                 num_queries: Optional[int] = None,
                 num_shots: Optional[int] = None,
                 transductive: Optional[bool] = None,
                 inner_steps: Optional[int] = None,
                 num_episodes: int = 600,
                 pool: str = 'meta_test',
                 omniglot_dir: Optional[str] = None,
                 data_root: Optional[str] = None,
                 output: Optional[str] = None) -> dict:
  """Scores a finished run's best checkpoint on fixed episodes.

  Args:
    workdir: a training workdir (config.json, best/ or checkpoints/).
    episode_classes, distinct_drawers, num_queries, num_shots: replace the
      run's episode options (None: keep them). N stays the model's.
    transductive: replace the run's batch-norm protocol at test (True: the
      query batch's own statistics, as MAML's code; False: the support
      set's); None keeps the run's.
    inner_steps: replace the run's T (None: keep it; 0, for a run with
      `head_init='prototypes'`: its prototype classifier without the rule).
    num_episodes: how many episodes.
    pool: `meta_test` or `meta_valid`.
    omniglot_dir, data_root: where the data is now, if it moved.
    output: the JSON file written; None: `default_output(...)` inside the
      workdir; '' writes nothing.

  Returns:
    dict: `accuracy`, `ci95`, `loss`, `episodes`, `accuracies`, the episode
    config and the checkpoint.

  Raises:
    ValueError: bad options, data, or a pool that cannot supply the
      episodes; FileNotFoundError: not a workdir or no checkpoint.
  """
  if pool not in POOLS:
    raise ValueError(f'pool={pool!r}: must be one of {POOLS}')
  rule, config, checkpoint = checkpoints.restore_rule(workdir)
  config = _retest_config(
      config, dict(episode_classes=episode_classes,
                   distinct_drawers=distinct_drawers, num_queries=num_queries,
                   num_shots=num_shots),
      dict(transductive=transductive, inner_steps=inner_steps),
      omniglot_dir, data_root)
  episode = config.episode
  pools = pools_lib.make_episode_pools(config.data, episode)
  episodes = episodes_lib.make_eval_dataset(
      getattr(pools, pool), episode, num_episodes, _SEEDS[pool], name=pool)
  eval_step = make_eval_step(rule, config.inner_loop)
  start = time.perf_counter()
  result = evaluate(eval_step, batch_episodes(episodes))
  result.update(
      pool=pool,
      protocol=protocol_name(episode, config.inner_loop.transductive,
                             inner_steps),
      transductive=config.inner_loop.transductive,
      inner_steps=config.inner_loop.inner_steps,
      episode=dataclasses.asdict(episode), checkpoint=checkpoint,
      workdir=workdir_lib.absolute(workdir), dataset=config.data.dataset,
      split=config.data.split, seconds=time.perf_counter() - start)
  if output is None:
    output = default_output(workdir, episode, pool,
                            config.inner_loop.transductive, inner_steps)
  if output:
    workdir_lib.write_json(output, result)
  logging.info('%s %s: accuracy %.4f +- %.4f over %d episodes.', pool,
               result['protocol'], result['accuracy'], result['ci95'],
               result['episodes'])
  return result
