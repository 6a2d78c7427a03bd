r"""Speed and memory benchmark; prints one JSON object.

    python -m meta_lstm_tf.benchmark --num_ways=5 --num_shots=1 \
        --num_queries=15 --inner_steps=8

The meta-LSTM is timed as `configs/base.flags` trains it (hidden size 5,
per-tensor gate biases; `--meta_learner=base`), and also in the paper's layout
(hidden size 20, shared biases: `meta_train_episodes_per_sec_paper_layout`).
TensorFlow's thread pools are set first (`--intra_op_threads`,
`--inter_op_threads`, as the main job; see `runtime`).

Keys: `cpu_model`, `intra_op_threads`, `inter_op_threads`,
`meta_train_episodes_per_sec` (first order, meta-batch 1),
`step_breakdown_ms` (one first-order inner step taken apart: the learner's
support forward and backward pass, the meta-LSTM's forward pass and its
forward and backward pass, the query pass; medians of separately compiled
functions, so their sum only approximates the step),
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
import platform
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import distribute
from meta_lstm_tf import inner_loop
from meta_lstm_tf import learner
from meta_lstm_tf import rules
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
_META_LEARNER = flags.DEFINE_enum(
    'meta_learner', 'base', ['base', 'paper'],
    'Meta-LSTM settings of the headline rate: base (configs/base.flags) or '
    'paper (hidden size 20, shared gate biases, the original gate init).')
_PAPER_LAYOUT = flags.DEFINE_bool(
    'paper_layout', True, 'Also time the meta-LSTM in the other layout '
    '(meta_train_episodes_per_sec_paper_layout / _base_layout).')
_BREAKDOWN = flags.DEFINE_bool('breakdown', True,
                               'Time the parts of one inner step.')
_SERVING_INNER_STEPS = flags.DEFINE_integer(
    'serving_inner_steps', 5, 'T of the served model (configs/mini.flags: 5).')
_ONLY_REPLICAS = flags.DEFINE_bool(
    'only_replicas', False, 'Internal: this process configures the devices '
    'and times only the --replicas measurement.')


cli.define_thread_flags(flags.FLAGS)

# The meta-LSTM settings of configs/base.flags (tests/test_benchmark.py checks
# that they agree) and the paper's.
META_LEARNERS = {
    'base': dict(hidden_size=5, gate_init='inner_lr', inner_lr=0.1,
                 forget_gate_init=0.9999, gate_bias='per_tensor',
                 gate_bias_scale=30.0),
    'paper': dict(hidden_size=20, gate_init='paper', gate_bias='shared',
                  gate_bias_scale=1.0),
}


def meta_learner_config(name: str, update_rule: str = 'meta_lstm'
                        ) -> config_lib.MetaLearnerConfig:
  """The `META_LEARNERS[name]` settings for `update_rule`."""
  return config_lib.MetaLearnerConfig(update_rule=update_rule,
                                      **META_LEARNERS[name]).validate()


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo), else `platform.processor()`."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or 'unknown'


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
                    strategy=None, update_rule: str = 'meta_lstm',
                    meta_learner: str = 'base') -> dict:
  """Returns episodes/s (median over blocks) and the first call's seconds.

  Without a strategy the meta-batch is one episode; with one, one episode
  per replica. `meta_learner` names the meta-LSTM's settings
  (`META_LEARNERS`).
  """
  learner_config = config_lib.LearnerConfig(num_ways=episode.num_ways,
                                            image_size=image_size)
  strategy = strategy or tf.distribute.get_strategy()
  config = dataclasses.replace(
      config_lib.ExperimentConfig(), learner=learner_config,
      meta_learner=meta_learner_config(meta_learner, update_rule))
  with strategy.scope():
    layer = rules.make_rule(config)
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


def _median_ms(fn, args, calls: int, repeats: int) -> float:
  """Median over `repeats` blocks of the mean ms per call of `fn(*args)`."""
  for _ in range(3):
    tf.nest.map_structure(np.asarray, fn(*args))
  blocks = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      out = fn(*args)
    tf.nest.map_structure(np.asarray, out)
    blocks.append((time.perf_counter() - start) * 1e3 / calls)
  return float(np.median(blocks))


def step_breakdown_ms(episode: config_lib.EpisodeConfig, image_size: int,
                      meta_learner: str = 'base', calls: int = 20,
                      repeats: int = 3) -> dict:
  """Milliseconds of the parts of one first-order inner step of the meta-LSTM.

  Each part is its own compiled function on the step's shapes (a synthetic
  episode, theta_0 and the state after one update), so each figure includes
  one function call's overhead (`call_overhead`, an empty function).

  Returns:
    {'learner_forward_backward': support loss and gradient at theta_t,
     'meta_lstm_forward': one meta-LSTM update,
     'meta_lstm_forward_backward': the update and the gradient of a loss on
       its output w.r.t. the meta-LSTM weights and its input state,
     'query_forward_backward': query loss at theta_T and its gradient (once
       per episode), 'call_overhead', 'coordinates': P}
  """
  config = dataclasses.replace(
      config_lib.ExperimentConfig(),
      learner=config_lib.LearnerConfig(num_ways=episode.num_ways,
                                       image_size=image_size),
      meta_learner=meta_learner_config(meta_learner))
  layer = rules.make_rule(config)
  learner_config = layer.learner_config
  data = tf.nest.map_structure(lambda x: x[0],
                               synthetic_episodes(episode, image_size))
  weights = layer.prepare(layer.meta_weights())
  params = tf.convert_to_tensor(layer.initial_params)

  @tf.function
  def learner_fb(params):
    loss, grad, _ = inner_loop.support_loss_and_gradient(
        params, data.support_images, data.support_labels, learner_config,
        second_order=False)
    return loss, grad

  loss, grad = learner_fb(params)
  state = layer.update(weights, layer.initial_state(weights, params), grad,
                       loss)
  probe = tf.random.stateless_normal(params.shape, seed=[0, 1])

  @tf.function
  def meta_lstm_forward(weights, state):
    return layer.update(weights, state, grad, loss)

  @tf.function
  def meta_lstm_fb(weights, state):
    with tf.GradientTape() as tape:
      tape.watch((weights, state))
      new_state = layer.update(weights, state, grad, loss)
      out = tf.reduce_sum(new_state.params * probe)
    return tape.gradient(out, (weights, state))

  @tf.function
  def query_fb(params):
    with tf.GradientTape() as tape:
      tape.watch(params)
      logits, _ = learner.apply(
          learner.unflatten(params, learner.param_spec(learner_config)),
          data.query_images, learner_config)
      query_loss, _ = learner.loss_and_accuracy(logits, data.query_labels)
    return tape.gradient(query_loss, params)

  empty = tf.function(lambda x: x)
  time_ = lambda fn, *args: round(_median_ms(fn, args, calls, repeats), 3)
  return {
      'learner_forward_backward': time_(learner_fb, params),
      'meta_lstm_forward': time_(meta_lstm_forward, weights, state),
      'meta_lstm_forward_backward': time_(meta_lstm_fb, weights, state),
      'query_forward_backward': time_(query_fb, params),
      'call_overhead': time_(empty, loss),
      'coordinates': int(params.shape[0]),
  }


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
                           strategy=strategy, meta_learner=_META_LEARNER.value)
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
                     'replicas', 'meta_learner', 'intra_op_threads',
                     'inter_op_threads')]
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
  threads = cli.configure_threads(flags.FLAGS)
  if _ONLY_REPLICAS.value:
    json.dump(_time_replicas_here(episode), sys.stdout)
    sys.stdout.write('\n')
    return
  meta_learner = _META_LEARNER.value
  result = {
      'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
      'cpu_model': cpu_model(), 'cpu_count': os.cpu_count(),
      'num_ways': episode.num_ways, 'num_shots': episode.num_shots,
      'num_queries': episode.num_queries, 'inner_steps': _INNER_STEPS.value,
      'jit_compile': _JIT.value, 'meta_learner': meta_learner,
      'hidden_size': META_LEARNERS[meta_learner]['hidden_size'],
      'tensorflow': tf.__version__, **threads,
  }
  first = time_meta_train(episode, _INNER_STEPS.value, _IMAGE_SIZE.value,
                          False, _STEPS.value, _REPEATS.value, _JIT.value,
                          meta_learner=meta_learner)
  result['meta_train_episodes_per_sec'] = first['episodes_per_sec']
  result['peak_rss_mib'] = _peak_rss_mib()
  if _PAPER_LAYOUT.value:
    other = 'paper' if meta_learner == 'base' else 'base'
    result[f'meta_train_episodes_per_sec_{other}_layout'] = time_meta_train(
        episode, _INNER_STEPS.value, _IMAGE_SIZE.value, False, _STEPS.value,
        _REPEATS.value, _JIT.value, meta_learner=other)['episodes_per_sec']
  if _BREAKDOWN.value:
    result['step_breakdown_ms'] = step_breakdown_ms(
        episode, _IMAGE_SIZE.value, meta_learner)
  if _REPLICAS.value > 1:
    try:
      result.update(_time_replicas_in_subprocess())
    except Exception as e:  # pylint: disable=broad-except
      result['replicas_error'] = f'{type(e).__name__}: {e}'
  if _SECOND_ORDER.value:
    second = time_meta_train(episode, _INNER_STEPS.value, _IMAGE_SIZE.value,
                             True, _STEPS.value, _REPEATS.value, _JIT.value,
                             meta_learner=meta_learner)
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
  from meta_lstm_tf.benchmarks import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.pipeline_benchmark(omniglot_dir)


def _serving_benchmark(omniglot_dir):
  # pylint: disable-next=g-import-not-at-top
  from meta_lstm_tf.benchmarks import serving as serving_benchmark
  return serving_benchmark.serving_latency_benchmark(
      omniglot_dir, inner_steps=_SERVING_INNER_STEPS.value,
      meta_learner=meta_learner_config(_META_LEARNER.value))


_EXTRA_BENCHMARKS = (
    ('pipeline', lambda: _PIPELINE.value, _pipeline_benchmark),
    ('serving', lambda: _SERVING.value, _serving_benchmark),
)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
