"""Throughput of the episode pipeline, for `meta_lstm_tf.benchmark`.

The pipeline must never be the bottleneck: it should produce episodes at
least 20x faster than meta-training consumes them (~20-30 episodes/s).

Shape glossary: N ways, K shots, Q queries per class, B meta-batch size.
"""

import time
from typing import Dict, Optional

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import episodes
from meta_lstm_tf.data import errors
from meta_lstm_tf.data import pools as pools_lib

# (key, N, K, Q) of the reported settings.
BENCHMARK_SETTINGS = (
    ('pipeline_episodes_per_sec_5w1s', 5, 1, 15),
    ('pipeline_episodes_per_sec_20w5s', 20, 5, 15),
)


def pipeline_episodes_per_sec(pool: class_pools.ClassPool,
                              episode_config: config_lib.EpisodeConfig,
                              num_episodes: int = 3000,
                              meta_batch_size: int = 1,
                              warmup_episodes: int = 300,
                              seed: int = 0) -> float:
  """Steady-state episodes per second of `episodes.make_episode_dataset`.

  Iterates the training dataset in Python (as a training loop does), first
  `warmup_episodes` untimed so tracing and autotuning are excluded, then
  times `num_episodes`.

  Args:
    pool: class pool to sample from.
    episode_config: N, K, Q.
    num_episodes: episodes timed (rounded up to whole meta-batches).
    meta_batch_size: B, episodes per element.
    warmup_episodes: episodes consumed before timing.
    seed: episode seed.

  Returns:
    Episodes per second.
  """
  dataset = episodes.make_episode_dataset(pool, episode_config,
                                          meta_batch_size, seed)
  iterator = iter(dataset)
  for _ in range(-(-warmup_episodes // meta_batch_size)):
    next(iterator)
  num_batches = -(-num_episodes // meta_batch_size)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  elapsed = time.perf_counter() - start
  return num_batches * meta_batch_size / elapsed


def pipeline_benchmarks(pool: class_pools.ClassPool,
                        num_episodes: int = 3000) -> Dict[str, float]:
  """Pipeline throughput for 5-way 1-shot and 20-way 5-shot, 15 queries.

  Args:
    pool: class pool with at least 20 classes and 20 drawings per class
      (e.g. `make_class_pools(...).meta_train`).
    num_episodes: episodes timed per setting.

  Returns:
    {'pipeline_episodes_per_sec_5w1s': float,
     'pipeline_episodes_per_sec_20w5s': float}.
  """
  results = {}
  for key, num_ways, num_shots, num_queries in BENCHMARK_SETTINGS:
    episode_config = config_lib.EpisodeConfig(
        num_ways=num_ways, num_shots=num_shots, num_queries=num_queries)
    results[key] = pipeline_episodes_per_sec(pool, episode_config,
                                             num_episodes=num_episodes)
  return results


def pipeline_benchmark(omniglot_dir: str, data_dir: Optional[str] = None,
                       num_episodes: int = 3000) -> Dict[str, float]:
  """`pipeline_benchmarks` on the lake meta_train pool of a local Omniglot.

  Args:
    omniglot_dir: local Omniglot copy (the binary resolves `--omniglot_dir`
      or `OMNIGLOT_DIR`).
    data_dir: TFDS data directory for the prepared copy (None: default).
    num_episodes: episodes timed per setting.

  Returns:
    The dict of `pipeline_benchmarks`.

  Raises:
    DataError: no `omniglot_dir`, or the copy is unusable.
  """
  if not omniglot_dir:
    raise errors.DataError(
        f'omniglot_dir={omniglot_dir!r}: the pipeline benchmark needs a local '
        'Omniglot copy (--omniglot_dir or OMNIGLOT_DIR)')
  pools = pools_lib.make_class_pools(
      config_lib.DataConfig(omniglot_dir=omniglot_dir, data_dir=data_dir))
  return pipeline_benchmarks(pools.meta_train, num_episodes=num_episodes)
