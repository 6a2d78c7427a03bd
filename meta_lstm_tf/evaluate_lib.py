"""Testing a finished run again, under another episode protocol.

`test_workdir` restores a training workdir's best checkpoint and scores it on
fixed episodes of its meta-test (or meta-valid) classes, with the episode
options replaced: Lake et al.'s one-shot protocol (`within_alphabet`,
`distinct_drawers`), another number of queries or episodes. Nothing is
trained and nothing in the workdir changes except, by default, the one
result file EVAL_<protocol>.json. Episodes use the seeds of training's own
validation and test (`evaluation.VALID_SEED`, `TEST_SEED`), so every model
evaluated with the same options sees the same episodes.

Shapes: N ways (fixed by the model), K shots, Q queries per class.
"""

import dataclasses
import os
import time
from typing import Optional

from absl import logging

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf import train_steps
from meta_lstm_tf import workdir as workdir_lib
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import splits

POOLS = ('meta_test', 'meta_valid')
_SEEDS = {'meta_test': evaluation.TEST_SEED,
          'meta_valid': evaluation.VALID_SEED}


def protocol_name(episode: config_lib.EpisodeConfig,
                  transductive: bool = False) -> str:
  """e.g. 'within_alphabet_distinct_drawers', 'any', 'any_transductive'."""
  name = episode.episode_classes
  name += '_distinct_drawers' if episode.distinct_drawers else ''
  return name + ('_transductive' if transductive else '')


def default_output(workdir: str, episode: config_lib.EpisodeConfig,
                   pool: str, transductive: bool = False) -> str:
  return os.path.join(
      workdir, f'eval_{pool}_{protocol_name(episode, transductive)}.json')


def test_workdir(workdir: str, *,
                 episode_classes: Optional[str] = None,
                 distinct_drawers: Optional[bool] = None,
                 num_queries: Optional[int] = None,
                 num_shots: Optional[int] = None,
                 transductive: Optional[bool] = None,
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
  rule, config, checkpoint = workdir_lib.restore_rule(workdir)
  episode = config.episode
  changes = {k: v for k, v in (('episode_classes', episode_classes),
                               ('distinct_drawers', distinct_drawers),
                               ('num_queries', num_queries),
                               ('num_shots', num_shots)) if v is not None}
  episode = dataclasses.replace(episode, **changes).validate()
  data = config.data
  if omniglot_dir:
    data = dataclasses.replace(data, omniglot_dir=os.path.abspath(
        os.path.expanduser(omniglot_dir)))
  if data_root:
    data = dataclasses.replace(data, data_root=os.path.abspath(
        os.path.expanduser(data_root)))
  inner_loop = config.inner_loop
  if transductive is not None:
    inner_loop = dataclasses.replace(inner_loop, transductive=transductive)
  config = dataclasses.replace(config, data=data, episode=episode,
                               inner_loop=inner_loop).validate()
  pools = splits.make_episode_pools(config.data, episode)
  episodes = episodes_lib.make_eval_dataset(
      getattr(pools, pool), episode, num_episodes, _SEEDS[pool], name=pool)
  eval_step = train_steps.make_eval_step(rule, config.inner_loop)
  start = time.perf_counter()
  result = evaluation.evaluate(eval_step, evaluation.batch_episodes(episodes))
  result.update(
      pool=pool,
      protocol=protocol_name(episode, config.inner_loop.transductive),
      transductive=config.inner_loop.transductive,
      episode=dataclasses.asdict(episode), checkpoint=checkpoint,
      workdir=workdir_lib.absolute(workdir), dataset=config.data.dataset,
      split=config.data.split, seconds=time.perf_counter() - start)
  if output is None:
    output = default_output(workdir, episode, pool,
                            config.inner_loop.transductive)
  if output:
    workdir_lib.write_json(output, result)
  logging.info('%s %s: accuracy %.4f +- %.4f over %d episodes.', pool,
               result['protocol'], result['accuracy'], result['ci95'],
               result['episodes'])
  return result
