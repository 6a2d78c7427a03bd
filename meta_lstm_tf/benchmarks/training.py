"""Timing the meta-train step: episodes per second and a per-part breakdown.

Shape glossary: N ways, K shots, Q queries per class, P learner coordinates,
T inner steps, D hidden units of the meta-LSTM's first layer.
"""

import platform
import resource
import time

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import distribute
from meta_lstm_tf import inner_loop
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf import rules
from meta_lstm_tf import runtime
from meta_lstm_tf.training import train_steps
from meta_lstm_tf import types

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


def peak_rss_mib() -> float:
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
                    meta_learner: str = 'base',
                    conv_dtype: str = 'float32',
                    meta_batch_size: int = 1) -> dict:
  """Returns episodes/s (median over blocks) and the first call's seconds.

  Without a strategy the meta-batch is `meta_batch_size` episodes (adapted
  as independent branches of one step); with one, one episode per
  replica. `meta_learner` names the meta-LSTM's settings
  (`META_LEARNERS`); `conv_dtype` is `InnerLoopConfig.conv_dtype`.
  """
  strategy = strategy or tf.distribute.get_strategy()
  config = config_lib.ExperimentConfig(
      data=config_lib.DataConfig(image_size=image_size), episode=episode,
      meta_learner=meta_learner_config(meta_learner, update_rule))
  with strategy.scope():
    rule = rules.make_rule(config)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(rule.trainable_variables)
  inner = config_lib.InnerLoopConfig(inner_steps=inner_steps,
                                     second_order=second_order,
                                     conv_dtype=conv_dtype)
  step = train_steps.make_meta_train_step(rule, optimizer, inner, 0.25,
                                          jit_compile=jit_compile,
                                          strategy=strategy)
  replicas = strategy.num_replicas_in_sync
  if distribute.is_distributed(strategy):
    meta_batch_size = replicas
  episodes = synthetic_episodes(episode, image_size,
                                meta_batch_size=meta_batch_size)
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
    rates.append(steps * meta_batch_size / (time.perf_counter() - start))
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
                      repeats: int = 3, conv_dtype: str = 'float32') -> dict:
  """Milliseconds of the parts of one first-order inner step of the meta-LSTM.

  Each part is its own compiled function on the step's shapes (a synthetic
  episode, theta_0 and the state after one update), so each figure includes
  one function call's overhead (`call_overhead`, an empty function). The
  learner's passes run as the step runs them (fused batch norm, first-conv
  patches made once outside the timed call, `conv_dtype`).

  Returns:
    {'learner_forward_backward': support loss and gradient at theta_t,
     'meta_lstm_forward': one meta-LSTM update,
     'meta_lstm_forward_backward': the update and the gradient of a loss on
       its output w.r.t. the meta-LSTM weights and its input state,
     'query_forward_backward': query loss at theta_T and its gradient (once
       per episode), 'call_overhead', 'coordinates': P}
  """
  config = config_lib.ExperimentConfig(
      data=config_lib.DataConfig(image_size=image_size), episode=episode,
      meta_learner=meta_learner_config(meta_learner))
  rule = rules.make_rule(config)
  learner_config = rule.learner_config
  data = tf.nest.map_structure(lambda x: x[0],
                               synthetic_episodes(episode, image_size))
  weights = rule.prepare(rule.meta_weights())
  params = tf.convert_to_tensor(rule.initial_params)
  dtype = runtime.resolve_conv_dtype(conv_dtype)
  support_patches = learner.first_block_patches(data.support_images)

  @tf.function
  def learner_fb(params):
    loss, grad, _ = inner_loop.support_loss_and_gradient(
        params, data.support_images, data.support_labels, learner_config,
        second_order=False, patches=support_patches, conv_dtype=dtype)
    return loss, grad

  loss, grad = learner_fb(params)
  state = rule.update(weights, rule.initial_state(weights, params), grad,
                       loss)
  probe = tf.random.stateless_normal(params.shape, seed=[0, 1])

  @tf.function
  def meta_lstm_forward(weights, state):
    return rule.update(weights, state, grad, loss)

  @tf.function
  def meta_lstm_fb(weights, state):
    with tf.GradientTape() as tape:
      tape.watch((weights, state))
      new_state = rule.update(weights, state, grad, loss)
      out = tf.reduce_sum(new_state.params * probe)
    return tape.gradient(out, (weights, state))

  @tf.function
  def query_fb(params):
    # The query pass of training: batch statistics, first order.
    return inner_loop.support_loss_and_gradient(
        params, data.query_images, data.query_labels, learner_config,
        second_order=False,
        patches=learner.first_block_patches(data.query_images),
        conv_dtype=dtype)[1]

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


def learner_bound_ms(episode: config_lib.EpisodeConfig, image_size: int,
                     inner_steps: int, conv_dtype: str = 'float32',
                     calls: int = 20, repeats: int = 5) -> float:
  """Milliseconds of the learner's own arithmetic in one meta-train step.

  The passes a first-order meta-train step runs, with the same learner code
  (`learner.apply` on the fused path, the per-episode first-conv patches,
  `conv_dtype`), in the order the step must run them: T support passes
  forward and backward, each on the parameters the previous one produced
  (here by a plain gradient step, one [P] multiply-add, instead of the
  meta-LSTM), the final support pass forward, and the query pass forward and
  backward. No meta-LSTM, no loop bookkeeping, no optimizer: what the step
  would cost if everything but the learner were free.
  """
  learner_config = config_lib.LearnerConfig(num_ways=episode.num_ways,
                                            image_size=image_size)
  spec = learner.param_spec(learner_config)
  data = tf.nest.map_structure(lambda x: x[0],
                               synthetic_episodes(episode, image_size))
  params = learner.flatten(learner.init_params(learner_config), spec)
  dtype = runtime.resolve_conv_dtype(conv_dtype)

  def loss_and_grad(p, images, labels, patches):
    return inner_loop.support_loss_and_gradient(
        p, images, labels, learner_config, second_order=False,
        patches=patches, conv_dtype=dtype)[:2]

  @tf.function
  def passes(p):
    support_patches = learner.first_block_patches(data.support_images)
    for _ in range(inner_steps):
      _, grad = loss_and_grad(p, data.support_images, data.support_labels,
                              support_patches)
      p = p - 0.01 * grad
    final, _ = learner.apply(learner.unflatten(p, spec), data.support_images,
                             learner_config, twice_differentiable=False,
                             patches=support_patches, conv_dtype=dtype)
    _, query_grad = loss_and_grad(
        p, data.query_images, data.query_labels,
        learner.first_block_patches(data.query_images))
    return query_grad, final

  return round(_median_ms(passes, (params,), calls, repeats), 3)


def conv_gflops(num_images: int, image_size: int, num_filters: int = 32,
                calls: int = 20, repeats: int = 5) -> dict:
  """The machine's conv throughput at the learner's largest conv shape.

  The second block's 3x3 conv of a query batch ([num_images, R, R, F] ->
  F, R = image_size / 2, 'same'), as the learner runs it: forward, kernel
  gradient and input gradient, in float32 and bfloat16, each timed alone
  (`_median_ms`, one call's overhead included). GFLOP/s count a
  multiply-add as two.
  """
  size = image_size // 2
  rng = np.random.default_rng(0)
  shape = (num_images, size, size, num_filters)
  flops = 2.0 * num_images * size * size * 9 * num_filters * num_filters
  result = {'shape': list(shape), 'mflop': round(flops / 1e6, 1)}
  for dtype in (tf.float32, tf.bfloat16):
    x = tf.cast(rng.standard_normal(shape), dtype)
    kernel = tf.cast(rng.standard_normal((3, 3, num_filters, num_filters)),
                     dtype)
    dy = tf.cast(rng.standard_normal(shape), dtype)
    ops = {
        'forward': tf.function(
            lambda x=x, kernel=kernel: tf.nn.conv2d(x, kernel, 1, 'SAME')),
        'kernel_gradient': tf.function(
            lambda x=x, dy=dy: tf.compat.v1.nn.conv2d_backprop_filter(
                x, kernel.shape, dy, [1, 1, 1, 1], 'SAME')),
        'input_gradient': tf.function(
            lambda kernel=kernel, dy=dy: tf.compat.v1.nn.conv2d_backprop_input(
                shape, kernel, dy, [1, 1, 1, 1], 'SAME')),
    }
    # Three significant digits: a small shape on a busy machine can run
    # below 0.05 GFLOP/s, which one decimal would print as 0.
    result[dtype.name] = {
        name: float(f'{flops / 1e6 / _median_ms(fn, (), calls, repeats):.3g}')
        for name, fn in ops.items()}
  return result


def replica_strategy(replicas: int) -> tf.distribute.Strategy:
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
