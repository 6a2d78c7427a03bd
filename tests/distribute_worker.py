"""Subprocess side of tests/test_distribute.py; prints one JSON line.

Device configuration must happen before TensorFlow initialises its devices,
so each mode runs in a fresh process:

  python tests/distribute_worker.py equality OUT_JSON
      mirrored over 2 logical CPU devices vs one device: meta-train steps on
      the same meta-batch, then `train_and_evaluate` on synthetic pools.
  python tests/distribute_worker.py multi_worker OUT_DIR WORKDIR
      one worker of a TF_CONFIG cluster: `train_and_evaluate` with
      strategy=multi_worker; writes OUT_DIR/params_<task>.npy.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

from meta_lstm_tf import rules


def _two_cpu_devices():
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _flat_params(rule):
  return np.concatenate([
      np.reshape(tf.convert_to_tensor(v).numpy(), [-1])
      for v in rule.trainable_variables
  ])


def _step_params(strategy, optimizer_fn, clip_norm, episodes, steps=2):
  """Meta-parameters and metrics after `steps` steps on `episodes`."""
  import keras
  from meta_lstm_tf import config as config_lib
  from meta_lstm_tf.training import distribute
  from meta_lstm_tf.rules import meta_lstm
  from meta_lstm_tf.training import train_steps
  learner_config = config_lib.LearnerConfig(num_ways=3, num_filters=4,
                                            num_blocks=2, image_size=8)
  with strategy.scope():
    layer = meta_lstm.MetaLSTMRule(learner_config, hidden_size=4,
                                          seed=3)
    optimizer = optimizer_fn(keras)
    optimizer.build(layer.trainable_variables)
  step = train_steps.make_meta_train_step(
      layer, optimizer, config_lib.InnerLoopConfig(inner_steps=2), clip_norm,
      strategy=strategy)
  if distribute.is_distributed(strategy):
    replicas = strategy.num_replicas_in_sync
    share = episodes.support_images.shape[0] // replicas

    def replica_share(context):
      first = context.replica_id_in_sync_group * share
      return tf.nest.map_structure(lambda x: x[first:first + share], episodes)

    inputs = strategy.experimental_distribute_values_from_function(
        replica_share)
  else:
    inputs = episodes
  metrics = {}
  for _ in range(steps):
    metrics = step(inputs)
  return (_flat_params(layer),
          {k: float(v) for k, v in metrics.items()
           if k in ('loss', 'accuracy', 'grad_norm')},
          int(optimizer.iterations.numpy()))


def equality(out_path):
  _two_cpu_devices()
  from meta_lstm_tf.benchmarks import training
  from meta_lstm_tf import config as config_lib
  from meta_lstm_tf.training import distribute
  from meta_lstm_tf.training import train_lib
  from meta_lstm_tf.training import checkpoints
  from meta_lstm_tf.data import pools as pools_lib
  from tests.fixtures import pools as pool_fixtures

  mirrored = distribute.make_strategy('mirrored')
  report = {'replicas': mirrored.num_replicas_in_sync, 'steps': {}}
  episodes = training.synthetic_episodes(config_lib.EpisodeConfig(3, 1, 2),
                                          8, meta_batch_size=4, seed=1)
  optimizers = {
      # SGD: the update is the gradient itself (a double all-reduce doubles
      # it); Adam with clipping is what training uses.
      'sgd': (lambda keras: keras.optimizers.SGD(0.1), 0.0),
      'sgd_clipped': (lambda keras: keras.optimizers.SGD(0.1), 0.25),
      'adam_clipped': (lambda keras: keras.optimizers.Adam(1e-3), 0.25),
  }
  for name, (optimizer_fn, clip_norm) in optimizers.items():
    single = _step_params(tf.distribute.get_strategy(), optimizer_fn,
                          clip_norm, episodes)
    split = _step_params(mirrored, optimizer_fn, clip_norm, episodes)
    report['steps'][name] = {
        'max_param_diff': float(np.max(np.abs(single[0] - split[0]))),
        'max_param_change': float(np.max(np.abs(single[0] - _step_params(
            tf.distribute.get_strategy(), optimizer_fn, clip_norm, episodes,
            steps=0)[0]))),
        'single_metrics': single[1], 'split_metrics': split[1],
        'iterations': [single[2], split[2]]}

  # End to end on synthetic pools: the same run on one device and mirrored.
  pools = pool_fixtures.synthetic_pools()
  pools_lib.make_class_pools = lambda data_config: pools
  runs = {}
  for name, strategy in (('default', None), ('mirrored', mirrored)):
    workdir = os.path.join(os.path.dirname(out_path), name)
    config = pool_fixtures.tiny_config(
        meta_batch_size=2, strategy=name, export=name == 'mirrored')
    results = train_lib.train_and_evaluate(config, workdir, '--x=1\n',
                                           strategy=strategy)
    restored, _, _ = checkpoints.restore_rule(
        workdir,
        tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints')))
    runs[name] = {
        'results': results,
        'params': _flat_params(restored),
        'files': sorted(os.listdir(workdir))
    }
  report['train'] = {
      'max_param_diff':
      float(
          np.max(np.abs(runs['default']['params'] -
                        runs['mirrored']['params']))),
      'results': {
          name: run['results']
          for name, run in runs.items()
      },
      'files': {
          name: run['files']
          for name, run in runs.items()
      }
  }
  with open(out_path, 'w') as f:
    json.dump(report, f)


def multi_worker(out_dir, workdir):
  """One worker of the TF_CONFIG cluster: 3 meta-steps, B = 2 (1 per worker).

  Validation runs at step 3 only, so the layer ends with this worker's own
  step-3 parameters (the best checkpoint it wrote and read back).
  """
  from meta_lstm_tf.training import distribute
  strategy = distribute.make_strategy('multi_worker')  # Before other TF.
  from meta_lstm_tf.training import train_lib
  from meta_lstm_tf.data import pools as pools_lib
  from tests.fixtures import pools as pool_fixtures
  task = json.loads(os.environ['TF_CONFIG'])['task']
  pools = pool_fixtures.synthetic_pools()
  pools_lib.make_class_pools = lambda data_config: pools
  layers = []
  make_rule = rules.make_rule
  rules.make_rule = lambda config: layers.append(
      make_rule(config)) or layers[-1]
  config = pool_fixtures.tiny_config(
      max_steps=3, eval_every=3, checkpoint_every=3, meta_batch_size=2,
      strategy='multi_worker')
  results = train_lib.train_and_evaluate(config, workdir, strategy=strategy)
  np.save(os.path.join(out_dir, f'params_{task["index"]}.npy'),
          _flat_params(layers[0]))
  print(json.dumps({'task': task, 'chief': distribute.is_chief(strategy),
                    'replicas': strategy.num_replicas_in_sync,
                    'steps': results['steps'],
                    'best_step': results['best_step']}))


if __name__ == '__main__':
  if sys.argv[1] == 'equality':
    equality(sys.argv[2])
  elif sys.argv[1] == 'multi_worker':
    multi_worker(sys.argv[2], sys.argv[3])
  else:
    raise SystemExit(f'unknown mode {sys.argv[1]!r}')
