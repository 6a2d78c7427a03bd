r"""Speed and memory benchmark; prints one JSON object.

    python -m meta_lstm_tf.benchmark --num_ways=5 --num_shots=1 \
        --num_queries=15 --inner_steps=8

Keys: `meta_train_episodes_per_sec` (first order, meta-batch 1),
`meta_train_episodes_per_sec_second_order`, `train_step_trace_seconds`,
`peak_rss_mib` (after the first-order measurement), and, where Omniglot is
available (`--omniglot_dir` or `OMNIGLOT_DIR`), the pipeline's
`pipeline_episodes_per_sec_5w1s` / `_20w5s`; with `--serving`, the latency of
adapt-and-classify through a loaded SavedModel. Rates are medians over
`--repeats` timed blocks of `--steps` steps each.
"""

import json
import resource
import sys
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import meta_lstm_layer
from meta_lstm_tf import train_steps
from meta_lstm_tf import types

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
_PIPELINE = flags.DEFINE_bool('pipeline', True,
                              'Time the episode pipeline (needs Omniglot).')
_SERVING = flags.DEFINE_bool('serving', True,
                             'Time adapt-and-classify through a SavedModel.')
_OMNIGLOT_DIR = flags.DEFINE_string('omniglot_dir', None,
                                    'Local Omniglot (default $OMNIGLOT_DIR).')


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
                    repeats: int, jit_compile: bool = False) -> dict:
  """Returns episodes/s (median over blocks) and the first call's seconds."""
  learner_config = config_lib.LearnerConfig(num_ways=episode.num_ways,
                                            image_size=image_size)
  layer = meta_lstm_layer.MetaLSTMLayer(learner_config)
  optimizer = keras.optimizers.Adam(1e-3)
  inner = config_lib.InnerLoopConfig(inner_steps=inner_steps,
                                     second_order=second_order)
  step = train_steps.make_meta_train_step(layer, optimizer, inner, 0.25,
                                          jit_compile=jit_compile)
  episodes = synthetic_episodes(episode, image_size)
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
    rates.append(steps / (time.perf_counter() - start))
  return {'episodes_per_sec': float(np.median(rates)),
          'trace_seconds': trace_seconds}


def main(argv):
  del argv
  episode = config_lib.EpisodeConfig(_NUM_WAYS.value, _NUM_SHOTS.value,
                                     _NUM_QUERIES.value).validate()
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
