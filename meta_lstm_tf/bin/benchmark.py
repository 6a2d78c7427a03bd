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
`peak_rss_mib` (after the first-order measurement), `conv_dtype` (as
resolved on this machine), `learner_bound_ms` (the learner's own passes of
one first-order meta-train step, timed bare: `training.learner_bound_ms`),
`step_over_learner_bound` (the step's time over it),
`meta_train_episodes_per_sec_meta_batch_2` (`--meta_batch_sizes`: B
episodes per step, one update), `conv_gflops` (the
machine's conv throughput at the learner's largest conv shape, float32 and
bfloat16), and, where Omniglot is
available (`--omniglot_dir` or `OMNIGLOT_DIR`), the pipeline's
`pipeline_episodes_per_sec_5w1s` / `_20w5s`; with `--serving`, the latency of
adapt-and-classify through a loaded SavedModel. Rates are medians over
`--repeats` timed blocks of `--steps` steps each.
"""

import json
import os
import subprocess
import sys

from meta_lstm_tf.bin import verbosity

# Before TensorFlow loads: its C++ INFO and WARNING lines off by default.
verbosity.quiet_tensorflow_by_default(sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
import tensorflow as tf

from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import runtime
from meta_lstm_tf.benchmarks import training
from meta_lstm_tf.data.omniglot import sources as omniglot_sources


def _time_meta_train(episode, second_order: bool, **kwargs) -> dict:
  """`training.time_meta_train` at the flags' T, image size, steps,
  repeats and XLA setting."""
  f = flags.FLAGS
  return training.time_meta_train(episode, f.inner_steps, f.image_size,
                                  second_order, f.steps, f.repeats,
                                  f.jit_compile, **kwargs)


def _time_replicas_here(episode: config_lib.EpisodeConfig) -> dict:
  """The --only_replicas process: one JSON line with the replicas' rate."""
  strategy = training.replica_strategy(flags.FLAGS.replicas)
  timing = _time_meta_train(
      episode, False, strategy=strategy,
      meta_learner=flags.FLAGS.meta_learner, conv_dtype=flags.FLAGS.conv_dtype)
  return {'episodes_per_sec': timing['episodes_per_sec'],
          'devices': list(strategy.extended.worker_devices)}


def _time_replicas_in_subprocess() -> dict:
  """Runs this benchmark with --only_replicas in a fresh process."""
  replicas = flags.FLAGS.replicas
  command = [sys.executable, '-m', 'meta_lstm_tf.bin.benchmark',
             '--only_replicas'] + [
                 f'--{name}={flags.FLAGS[name].value}' for name in (
                     'num_ways', 'num_shots', 'num_queries', 'inner_steps',
                     'image_size', 'steps', 'repeats', 'jit_compile',
                     'replicas', 'meta_learner', 'conv_dtype',
                     'intra_op_threads', 'inter_op_threads')]
  package_root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
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


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The binary's flags, on `flag_values` (the thread flags included)."""
  flags.DEFINE_integer('num_ways', 5, 'N ways.', flag_values=flag_values)
  flags.DEFINE_integer('num_shots', 1, 'K shots.', flag_values=flag_values)
  flags.DEFINE_integer('num_queries', 15, 'Queries per class.',
                       flag_values=flag_values)
  flags.DEFINE_integer('inner_steps', 8, 'T inner steps.',
                       flag_values=flag_values)
  flags.DEFINE_integer('image_size', 28, 'Image size.', flag_values=flag_values)
  flags.DEFINE_integer('steps', 20, 'Timed steps per block.',
                       flag_values=flag_values)
  flags.DEFINE_integer('repeats', 3, 'Timed blocks (median).',
                       flag_values=flag_values)
  flags.DEFINE_bool('second_order', True,
                                    'Also time the second-order step.',
                    flag_values=flag_values)
  flags.DEFINE_bool('jit_compile', False, 'Compile steps with XLA.',
                    flag_values=flag_values)
  flags.DEFINE_list(
      'other_rules', ['sgd', 'meta_sgd'],
      'Also time the first-order step of these update rules '
      '(meta_train_episodes_per_sec_<rule>).', flag_values=flag_values)
  flags.DEFINE_bool('pipeline', True,
                                'Time the episode pipeline (needs Omniglot).',
                    flag_values=flag_values)
  flags.DEFINE_bool('serving', True,
                               'Time adapt-and-classify through a SavedModel.',
                    flag_values=flag_values)
  flags.DEFINE_string('omniglot_dir', None,
                                      'Local Omniglot (default $OMNIGLOT_DIR).',
                      flag_values=flag_values)
  flags.DEFINE_integer(
      'replicas', 2, 'Replicas of the multi-replica measurement (0: skip it).',
      flag_values=flag_values)
  flags.DEFINE_enum(
      'meta_learner', 'base', ['base', 'paper'],
      'Meta-LSTM settings of the headline rate: base (configs/base.flags) or '
      'paper (hidden size 20, shared gate biases, the original gate init).',
      flag_values=flag_values)
  flags.DEFINE_bool(
      'paper_layout', True, 'Also time the meta-LSTM in the other layout '
      '(meta_train_episodes_per_sec_paper_layout / _base_layout).',
      flag_values=flag_values)
  flags.DEFINE_bool('breakdown', True,
                                 'Time the parts of one inner step.',
                    flag_values=flag_values)
  flags.DEFINE_integer(
      'serving_inner_steps', 5,
      'T of the served model (configs/mini.flags: 5).',
      flag_values=flag_values)
  flags.DEFINE_bool(
      'only_replicas', False, 'Internal: this process configures the devices '
      'and times only the --replicas measurement.', flag_values=flag_values)
  flags.DEFINE_enum(
      'conv_dtype', 'auto', list(config_lib.CONV_DTYPES),
      "The learner's conv precision in first-order passes (as "
      'configs/base.flags: auto, bfloat16 on CPUs with AVX512-BF16 or AMX).',
      flag_values=flag_values)
  flags.DEFINE_list(
      'meta_batch_sizes', ['2'],
      'Also time the first-order step with these meta-batch sizes (B '
      'episodes adapted side by side in one step, one update): '
      'meta_train_episodes_per_sec_meta_batch_B. Empty: none.',
      flag_values=flag_values)
  flags.DEFINE_bool(
      'learner_bound', True,
      "Time the learner's own passes of a meta-train step alone "
      '(learner_bound_ms, step_over_learner_bound) and conv GFLOP/s.',
      flag_values=flag_values)
  cli.define_thread_flags(flag_values)


def main(argv):
  del argv
  episode = config_lib.EpisodeConfig(flags.FLAGS.num_ways,
                                     flags.FLAGS.num_shots,
                                     flags.FLAGS.num_queries).validate()
  threads = cli.configure_threads(flags.FLAGS)
  if flags.FLAGS.only_replicas:
    json.dump(_time_replicas_here(episode), sys.stdout)
    sys.stdout.write('\n')
    return
  meta_learner = flags.FLAGS.meta_learner
  result = {
      'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
      'cpu_model': training.cpu_model(), 'cpu_count': os.cpu_count(),
      'num_ways': episode.num_ways, 'num_shots': episode.num_shots,
      'num_queries': episode.num_queries,
      'inner_steps': flags.FLAGS.inner_steps,
      'jit_compile': flags.FLAGS.jit_compile, 'meta_learner': meta_learner,
      'conv_dtype': runtime.resolve_conv_dtype(flags.FLAGS.conv_dtype).name,
      'hidden_size': training.META_LEARNERS[meta_learner]['hidden_size'],
      'tensorflow': tf.__version__, **threads,
  }
  conv_dtype = flags.FLAGS.conv_dtype
  first = _time_meta_train(
      episode, False, meta_learner=meta_learner,
      conv_dtype=conv_dtype)
  result['meta_train_episodes_per_sec'] = first['episodes_per_sec']
  result['peak_rss_mib'] = training.peak_rss_mib()
  result.update(_first_order_variants(episode, first, meta_learner,
                                       conv_dtype))
  if flags.FLAGS.replicas > 1:
    try:
      result.update(_time_replicas_in_subprocess())
    except Exception as e:  # pylint: disable=broad-except
      result['replicas_error'] = f'{type(e).__name__}: {e}'
  if flags.FLAGS.second_order:
    second = _time_meta_train(
        episode, True, meta_learner=meta_learner,
        conv_dtype=conv_dtype)
    result['meta_train_episodes_per_sec_second_order'] = (
        second['episodes_per_sec'])
    result['train_step_trace_seconds'] = max(first['trace_seconds'],
                                             second['trace_seconds'])
    result['train_step_trace_seconds_first_order'] = first['trace_seconds']
    result['peak_rss_mib_with_second_order'] = training.peak_rss_mib()
  else:
    result['train_step_trace_seconds'] = first['trace_seconds']
  for rule in flags.FLAGS.other_rules:
    timing = _time_meta_train(
        episode, False, update_rule=rule, conv_dtype=conv_dtype)
    result[f'meta_train_episodes_per_sec_{rule}'] = timing['episodes_per_sec']
  # The flag, else $OMNIGLOT_DIR; None: the pipeline benchmark reports an
  # error and the serving one times synthetic images.
  omniglot_dir = omniglot_sources.resolve_omniglot_dir(flags.FLAGS.omniglot_dir)
  result['serving_images'] = 'omniglot' if omniglot_dir else 'synthetic'
  for name, enabled, fn in _EXTRA_BENCHMARKS:
    if enabled():
      try:
        result.update(fn(omniglot_dir))
      except Exception as e:  # pylint: disable=broad-except
        result[f'{name}_error'] = f'{type(e).__name__}: {e}'
  json.dump(result, sys.stdout, sort_keys=True)
  sys.stdout.write('\n')


def _first_order_variants(episode, first: dict, meta_learner: str,
                          conv_dtype: str) -> dict:
  """The first-order step's other measurements: other meta-batch sizes,
  the learner's bound, the other meta-LSTM layout, the step's breakdown."""
  result = {}
  for size in flags.FLAGS.meta_batch_sizes:
    batched = _time_meta_train(
        episode, False, meta_learner=meta_learner,
        conv_dtype=conv_dtype, meta_batch_size=int(size))
    result[f'meta_train_episodes_per_sec_meta_batch_{int(size)}'] = (
        batched['episodes_per_sec'])
  if flags.FLAGS.learner_bound:
    bound = training.learner_bound_ms(episode, flags.FLAGS.image_size,
                                      flags.FLAGS.inner_steps, conv_dtype)
    result['learner_bound_ms'] = bound
    result['step_over_learner_bound'] = round(
        1e3 / first['episodes_per_sec'] / bound, 3)
    result['conv_gflops'] = training.conv_gflops(
        episode.num_ways * episode.num_queries, flags.FLAGS.image_size)
  if flags.FLAGS.paper_layout:
    other = 'paper' if meta_learner == 'base' else 'base'
    other_layout = _time_meta_train(
        episode, False, meta_learner=other,
        conv_dtype=conv_dtype)
    result[f'meta_train_episodes_per_sec_{other}_layout'] = (
        other_layout['episodes_per_sec'])
  if flags.FLAGS.breakdown:
    result['step_breakdown_ms'] = training.step_breakdown_ms(
        episode, flags.FLAGS.image_size, meta_learner, conv_dtype=conv_dtype)
  return result


def _pipeline_benchmark(omniglot_dir):
  from meta_lstm_tf.benchmarks import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.pipeline_benchmark(omniglot_dir)


def _serving_benchmark(omniglot_dir):
  # pylint: disable-next=g-import-not-at-top
  from meta_lstm_tf.benchmarks import serving as serving_benchmark
  return serving_benchmark.serving_latency_benchmark(
      omniglot_dir, inner_steps=flags.FLAGS.serving_inner_steps,
      meta_learner=training.meta_learner_config(flags.FLAGS.meta_learner))


_EXTRA_BENCHMARKS = (
    ('pipeline', lambda: flags.FLAGS.pipeline, _pipeline_benchmark),
    ('serving', lambda: flags.FLAGS.serving, _serving_benchmark),
)


def run():
  cli.run_binary(main, define_flags)


if __name__ == '__main__':
  run()
