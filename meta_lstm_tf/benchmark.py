r"""Speed and memory benchmark; prints one JSON object.

    python -m meta_lstm_tf.benchmark --num_ways=5 --num_shots=1 \
        --num_queries=15 --inner_steps=8

Keys: `meta_train_episodes_per_sec` (first order, meta-batch 1),
`meta_train_episodes_per_sec_2_replicas` (first order, meta-batch 2 split
over 2 replicas of a MirroredStrategy: the first 2 GPUs, else 2 logical CPU
devices sharing the cores, so no speed-up there; measured in a subprocess,
since logical devices must be configured before TensorFlow starts),
`meta_train_episodes_per_sec_second_order`,
`meta_train_episodes_per_sec_sgd` / `_meta_sgd` (first order, the other
update rules, `--other_rules`), `train_step_trace_seconds`,
`peak_rss_mib` (after the first-order measurement), and, where Omniglot is
available (`--omniglot_dir` or `OMNIGLOT_DIR`), the pipeline's
`pipeline_episodes_per_sec_5w1s` / `_20w5s`; with `--serving`, the latency of
adapt-and-classify through a loaded SavedModel. Rates are medians over
`--repeats` timed blocks of `--steps` steps each.
"""

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import distribute
from meta_lstm_tf import train_steps
from meta_lstm_tf import types
from meta_lstm_tf import workdir as workdir_lib

_NUM_WAYS = flags.DEFINE_integer('num_ways', 5, 'N ways.')
_NUM_SHOTS = flags.DEFINE_integer('num_shots', 1, 'K shots.')
_NUM_QUERIES = flags.DEFINE_integer('num_queries', 15, 'Queries per class.')
_INNER_STEPS = flags.DEFINE_integer('inner_steps', 8, 'T inner steps.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 28, 'Image size.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps per block.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed blocks (median).')
_SECOND_ORDER = flags.DEFINE_bool('second_order', True,
                                  'Also time the second-order step.')
_JIT = flags.DEFINE_bool('jit_compile', False, 'Compile steps with XLA.')
_OTHER_RULES = flags.DEFINE_list(
    'other_rules', ['sgd', 'meta_sgd'],
    'Also time the first-order step of these update rules '
    '(meta_train_episodes_per_sec_<rule>).')
_PIPELINE = flags.DEFINE_bool('pipeline', True,
                              'Time the episode pipeline (needs Omniglot).')
_SERVING = flags.DEFINE_bool('serving', True,
                             'Time adapt-and-classify through a SavedModel.')
_OMNIGLOT_DIR = flags.DEFINE_string('omniglot_dir', None,
                                    'Local Omniglot (default $OMNIGLOT_DIR).')
_REPLICAS = flags.DEFINE_integer(
    'replicas', 2, 'Replicas of the multi-replica measurement (0: skip it).')
_ONLY_REPLICAS = flags.DEFINE_bool(
    'only_replicas', False, 'Internal: this process configures the devices '
    'and times only the --replicas measurement.')


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_episodes(episode: config_lib.EpisodeConfig, image_size: int,
                       meta_batch_size: int = 1, seed: int = 0):
  rng = np.random.default_rng(seed)
  n, k, q = episode.num_ways, episode.num_shots, episode.num_queries
  shape = (meta_batch_size,)
  return types.Episode(
      tf.constant(rng.random(shape + (n * k, image_size, image_size, 1)),
                  tf.float32),
      tf.constant(np.tile(np.repeat(np.arange(n), k), shape + (1,)), tf.int32),
      tf.constant(rng.random(shape + (n * q, image_size, image_size, 1)),
                  tf.float32),
      tf.constant(np.tile(np.repeat(np.arange(n), q), shape + (1,)), tf.int32))


def time_meta_train(episode: config_lib.EpisodeConfig, inner_steps: int,
                    image_size: int, second_order: bool, steps: int,
                    repeats: int, jit_compile: bool = False,
                    strategy=None, update_rule: str = 'meta_lstm') -> dict:
  """Returns episodes/s (median over blocks) and the first call's seconds.

  Without a strategy the meta-batch is one episode; with one, one episode
  per replica.
  """
  learner_config = config_lib.LearnerConfig(num_ways=episode.num_ways,
                                            image_size=image_size)
  strategy = strategy or tf.distribute.get_strategy()
  config = dataclasses.replace(
      config_lib.ExperimentConfig(), learner=learner_config,
      meta_learner=config_lib.MetaLearnerConfig(update_rule=update_rule))
  with strategy.scope():
    layer = workdir_lib.make_layer(config)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(layer.trainable_variables)
  inner = config_lib.InnerLoopConfig(inner_steps=inner_steps,
                                     second_order=second_order)
  step = train_steps.make_meta_train_step(layer, optimizer, inner, 0.25,
                                          jit_compile=jit_compile,
                                          strategy=strategy)
  replicas = strategy.num_replicas_in_sync
  episodes = synthetic_episodes(episode, image_size, meta_batch_size=replicas)
  if distribute.is_distributed(strategy):
    episodes = strategy.experimental_distribute_values_from_function(
        lambda context: tf.nest.map_structure(
            lambda x: x[context.replica_id_in_sync_group][tf.newaxis],
            episodes))
  start = time.perf_counter()
  step(episodes)['loss'].numpy()
  trace_seconds = time.perf_counter() - start
  for _ in range(2):
    step(episodes)['loss'].numpy()
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      metrics = step(episodes)
    metrics['loss'].numpy()
    rates.append(steps * replicas / (time.perf_counter() - start))
  return {'episodes_per_sec': float(np.median(rates)),
          'trace_seconds': trace_seconds}


def _replica_strategy(replicas: int) -> tf.distribute.Strategy:
  """MirroredStrategy over the first GPUs, else over logical CPU devices.

  Must run before anything else initialises TensorFlow's devices.
  """
  gpus = tf.config.list_physical_devices('GPU')
  if len(gpus) >= replicas:
    return tf.distribute.MirroredStrategy(
        [f'/gpu:{i}' for i in range(replicas)])
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
  return tf.distribute.MirroredStrategy(
      [f'/cpu:{i}' for i in range(replicas)])


def _time_replicas_here(episode: config_lib.EpisodeConfig) -> dict:
  """The --only_replicas process: one JSON line with the replicas' rate."""
  strategy = _replica_strategy(_REPLICAS.value)
  timing = time_meta_train(episode, _INNER_STEPS.value, _IMAGE_SIZE.value,
                           False, _STEPS.value, _REPEATS.value, _JIT.value,
                           strategy=strategy)
  return {'episodes_per_sec': timing['episodes_per_sec'],
          'devices': list(strategy.extended.worker_devices)}


def _time_replicas_in_subprocess() -> dict:
  """Runs this benchmark with --only_replicas in a fresh process."""
  replicas = _REPLICAS.value
  command = [sys.executable, '-m', 'meta_lstm_tf.benchmark',
             '--only_replicas'] + [
                 f'--{name}={flags.FLAGS[name].value}' for name in (
                     'num_ways', 'num_shots', 'num_queries', 'inner_steps',
                     'image_size', 'steps', 'repeats', 'jit_compile',
                     'replicas')]
  package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (package_root, env.get('PYTHONPATH')) if p)
  env.pop('TF_CONFIG', None)
  result = subprocess.run(command, capture_output=True, text=True, env=env,
                          check=False)
  if result.returncode:
    raise RuntimeError(result.stderr[-2000:])
  timing = json.loads(result.stdout.strip().splitlines()[-1])
  return {f'meta_train_episodes_per_sec_{replicas}_replicas':
              timing['episodes_per_sec'],
          f'replica_devices_{replicas}_replicas': timing['devices']}


def main(argv):
  del argv
  episode = config_lib.EpisodeConfig(_NUM_WAYS.value, _NUM_SHOTS.value,
                                     _NUM_QUERIES.value).validate()
  if _ONLY_REPLICAS.value:
    json.dump(_time_replicas_here(episode), sys.stdout)
    sys.stdout.write('\n')
    return
  result = {
      'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
      'num_ways': episode.num_ways, 'num_shots': episode.num_shots,
      'num_queries': episode.num_queries, 'inner_steps': _INNER_STEPS.value,
      'jit_compile': _JIT.value,
  }
  first = time_meta_train(episode, _INNER_STEPS.value, _IMAGE_SIZE.value,
                          False, _STEPS.value, _REPEATS.value, _JIT.value)
  result['meta_train_episodes_per_sec'] = first['episodes_per_sec']
  result['peak_rss_mib'] = _peak_rss_mib()
  if _REPLICAS.value > 1:
    try:
      result.update(_time_replicas_in_subprocess())
    except Exception as e:  # pylint: disable=broad-except
      result['replicas_error'] = f'{type(e).__name__}: {e}'
  if _SECOND_ORDER.value:
    second = time_meta_train(episode, _INNER_STEPS.value, _IMAGE_SIZE.value,
                             True, _STEPS.value, _REPEATS.value, _JIT.value)
    result['meta_train_episodes_per_sec_second_order'] = (
        second['episodes_per_sec'])
    result['train_step_trace_seconds'] = max(first['trace_seconds'],
                                             second['trace_seconds'])
    result['train_step_trace_seconds_first_order'] = first['trace_seconds']
    result['peak_rss_mib_with_second_order'] = _peak_rss_mib()
  else:
    result['train_step_trace_seconds'] = first['trace_seconds']
  for rule in _OTHER_RULES.value:
    timing = time_meta_train(episode, _INNER_STEPS.value, _IMAGE_SIZE.value,
                             False, _STEPS.value, _REPEATS.value, _JIT.value,
                             update_rule=rule)
    result[f'meta_train_episodes_per_sec_{rule}'] = timing['episodes_per_sec']
  for name, enabled, fn in _EXTRA_BENCHMARKS:
    if enabled():
      try:
        result.update(fn(_OMNIGLOT_DIR.value))
      except Exception as e:  # pylint: disable=broad-except
        result[f'{name}_error'] = f'{type(e).__name__}: {e}'
  json.dump(result, sys.stdout, sort_keys=True)
  sys.stdout.write('\n')


def _pipeline_benchmark(omniglot_dir):
  from meta_lstm_tf.data import benchmark_lib  # pylint: disable=g-import-not-at-top
  return benchmark_lib.pipeline_benchmark(omniglot_dir)


def _serving_benchmark(omniglot_dir):
  from meta_lstm_tf import export_lib  # pylint: disable=g-import-not-at-top
  return export_lib.serving_latency_benchmark(
      omniglot_dir, inner_steps=_INNER_STEPS.value)


_EXTRA_BENCHMARKS = (
    ('pipeline', lambda: _PIPELINE.value, _pipeline_benchmark),
    ('serving', lambda: _SERVING.value, _serving_benchmark),
)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
