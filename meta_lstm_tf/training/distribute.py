"""tf.distribute strategies for meta-training: which one, and who writes.

Shapes: B episodes per global meta-batch, R replicas in sync, b = B / R
episodes per replica.

`make_strategy(name)` builds the strategy named by `TrainConfig.strategy`:

  default       `tf.distribute.get_strategy()`: one device, no replication.
  mirrored      `tf.distribute.MirroredStrategy`: every local GPU of this
                machine, else every logical CPU device.
  multi_worker  `tf.distribute.MultiWorkerMirroredStrategy`: several machines;
                the cluster comes from the standard `TF_CONFIG` variable.
  tpu           `tf.distribute.TPUStrategy` on `tpu_address` (None: the TPU
                of this VM or the one named by the environment).

Under every strategy all workers run the same training program (the collective
ops of a train step need all of them); only the chief (`is_chief`) keeps what
it writes.
"""

import os
import shutil
import tempfile
from typing import Callable, Optional, Sequence, Tuple

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import episodes as episodes_lib

STRATEGIES = config_lib.STRATEGIES


def make_strategy(name: str, tpu_address: Optional[str] = None
                  ) -> tf.distribute.Strategy:
  """Builds the distribution strategy `name` (one of `STRATEGIES`).

  Args:
    name: `default`, `mirrored`, `multi_worker` or `tpu`.
    tpu_address: TPU name or grpc address for `tpu`; None resolves the local
      TPU (or the one the environment names).

  Returns:
    The strategy. Build layers and optimizers under its `scope()`.

  Raises:
    ValueError: an unknown name, or `tpu` where no TPU can be resolved.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    if tf.config.list_logical_devices('GPU'):
      return tf.distribute.MirroredStrategy()
    # No GPU: every logical CPU device (one unless configured otherwise).
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices('CPU')])
  if name == 'multi_worker':
    # Reads TF_CONFIG; without it, a single-worker cluster of local devices.
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'tpu':
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
          tpu=tpu_address)
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
      raise ValueError(f'strategy=tpu: no TPU found ({e})') from e
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f'strategy={name!r}: must be one of {STRATEGIES}')


def is_distributed(strategy: Optional[tf.distribute.Strategy]) -> bool:
  """False for None and the default (no-replication) strategy."""
  if strategy is None:
    return False
  with strategy.scope():
    return tf.distribute.has_strategy()


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
  """Whether this process writes checkpoints, summaries and results.

  The chief is the `chief` task of the cluster, else worker 0; a process
  without a cluster (default, mirrored, a single-worker run) is the chief.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True
  if task_type == 'chief':
    return True
  jobs = resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and 'chief' not in jobs


def write_dir(workdir: str, strategy: Optional[tf.distribute.Strategy]
              ) -> str:
  """Where this process writes what belongs in `workdir`.

  The chief writes to `workdir`. Other workers run the same program and
  make every save the chief makes (TensorFlow's guidance for
  multi-worker training: a save may take part in collective ops), into a
  private temporary directory that `remove_write_dir` deletes.
  """
  if is_chief(strategy):
    return workdir
  resolver = strategy.cluster_resolver
  return tempfile.mkdtemp(
      prefix=f'{os.path.basename(os.path.normpath(workdir))}-'
      f'{resolver.task_type}{resolver.task_id}-')


def remove_write_dir(workdir: str, write_directory: str) -> None:
  """Removes a non-chief's temporary `write_dir`; keeps the chief's."""
  if os.path.abspath(write_directory) != os.path.abspath(workdir):
    shutil.rmtree(write_directory, ignore_errors=True)


def check_meta_batch_size(strategy: Optional[tf.distribute.Strategy],
                          meta_batch_size: int) -> int:
  """Episodes per replica, b = B / R.

  Raises:
    ValueError: B is not a multiple of the replicas in sync (names the flag).
  """
  replicas = strategy.num_replicas_in_sync if strategy is not None else 1
  if meta_batch_size % replicas:
    raise ValueError(
        f'meta_batch_size={meta_batch_size}: must be a multiple of the '
        f'{replicas} replicas in sync of the strategy (each replica adapts '
        'meta_batch_size / replicas episodes)')
  return meta_batch_size // replicas


def make_mean(strategy: Optional[tf.distribute.Strategy]
              ) -> Callable[[Sequence[float]], Tuple[float, ...]]:
  """Builds mean(values) -> each value averaged over the strategy's replicas.

  What every worker must agree on (a stop, the learning rate of the next
  step) goes through it. Without replication it is the identity and runs no
  TF op.
  """
  if not is_distributed(strategy):
    return lambda values: tuple(float(value) for value in values)

  @tf.function
  def replica_mean(values):
    per_replica = strategy.run(tf.identity, args=(values,))
    return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica,
                           axis=None)

  def mean(values):
    return tuple(float(v) for v in replica_mean(
        tf.constant([float(value) for value in values], tf.float32)).numpy())

  return mean


def make_vote(strategy: Optional[tf.distribute.Strategy]
              ) -> Callable[[Sequence[bool]], Tuple[bool, ...]]:
  """Builds vote(flags) -> flags OR-ed over every worker of the strategy.

  Workers must take the same decisions (stop for a time budget or a signal)
  at the same step, or the others wait forever in the next step's
  collectives. Without replication the vote is the identity and runs no TF
  op.
  """
  mean = make_mean(strategy)
  return lambda flags: tuple(
      total > 0 for total in mean([float(bool(flag)) for flag in flags]))


def make_train_dataset(strategy, pool, config: config_lib.ExperimentConfig,
                       start_index: int):
  """The meta-train episodes, split across the strategy's replicas.

  Each input pipeline (one per worker) feeds its local replicas their B / R
  episodes of each global batch (`episodes.make_episode_dataset`).
  """
  train_cfg = config.train
  if not is_distributed(strategy):
    return episodes_lib.make_episode_dataset(
        pool, config.episode, train_cfg.meta_batch_size, train_cfg.seed,
        start_index=start_index)

  def dataset_fn(input_context: tf.distribute.InputContext):
    replicas = input_context.num_replicas_in_sync
    local = replicas // input_context.num_input_pipelines
    first = input_context.input_pipeline_id * local
    return episodes_lib.make_episode_dataset(
        pool, config.episode, train_cfg.meta_batch_size, train_cfg.seed,
        start_index=start_index, num_replicas=replicas,
        replica_ids=range(first, first + local))

  return strategy.distribute_datasets_from_function(dataset_fn)
