"""tf.distribute: strategies, the split meta-batch, mirrored and multi-worker.

Runs needing several devices or workers run `tests/distribute_worker.py` in
fresh processes: logical devices must be configured before TensorFlow
initialises them, and other test modules of this process must not see them.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import distribute
from meta_lstm_tf import rules
from meta_lstm_tf.training import train_lib
from meta_lstm_tf.training import checkpoints
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import pools as pools_lib
from tests.fixtures import pools as pool_fixtures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, 'tests', 'distribute_worker.py')
TIMEOUT_S = 240


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('TF_CONFIG', None)
  env.update(extra)
  return env


class _FakeResolver:

  def __init__(self, task_type, task_id, jobs):
    self.task_type, self.task_id = task_type, task_id
    self._spec = tf.train.ClusterSpec(
        {job: [f'localhost:{2000 + i}' for i in range(n)]
         for job, n in jobs.items()})

  def cluster_spec(self):
    return self._spec


class _FakeStrategy:

  def __init__(self, resolver):
    self.cluster_resolver = resolver


class StrategyTest(tf.test.TestCase, parameterized.TestCase):

  def test_default_is_not_distributed_and_is_chief(self):
    strategy = distribute.make_strategy('default')
    self.assertIs(strategy, tf.distribute.get_strategy())
    self.assertFalse(distribute.is_distributed(strategy))
    self.assertFalse(distribute.is_distributed(None))
    self.assertTrue(distribute.is_chief(strategy))
    self.assertEqual(distribute.make_vote(strategy)([0, True]),
                     (False, True))

  def test_unknown_strategy(self):
    with self.assertRaisesRegex(ValueError, 'strategy='):
      distribute.make_strategy('horovod')
    with self.assertRaisesRegex(ValueError, 'strategy='):
      config_lib.RuntimeConfig(strategy='horovod').validate()

  @parameterized.parameters(
      ('worker', 0, {'worker': 2}, True),
      ('worker', 1, {'worker': 2}, False),
      ('chief', 0, {'chief': 1, 'worker': 2}, True),
      ('worker', 0, {'chief': 1, 'worker': 2}, False),
      (None, None, {}, True),
  )
  def test_is_chief(self, task_type, task_id, jobs, expected):
    strategy = _FakeStrategy(_FakeResolver(task_type, task_id, jobs))
    self.assertEqual(distribute.is_chief(strategy), expected)

  def test_non_chief_writes_to_a_removed_temporary_dir(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    strategy = _FakeStrategy(_FakeResolver('worker', 1, {'worker': 2}))
    out_dir = distribute.write_dir(workdir, strategy)
    self.assertNotEqual(out_dir, workdir)
    distribute.remove_write_dir(workdir, out_dir)
    self.assertFalse(os.path.exists(out_dir))
    chief = _FakeStrategy(_FakeResolver('worker', 0, {'worker': 2}))
    self.assertEqual(distribute.write_dir(workdir, chief), workdir)
    distribute.remove_write_dir(workdir, workdir)
    self.assertTrue(os.path.exists(workdir))

  def test_meta_batch_not_divisible_names_the_flag(self):

    class TwoReplicas:
      num_replicas_in_sync = 2

    self.assertEqual(distribute.check_meta_batch_size(TwoReplicas(), 4), 2)
    with self.assertRaisesRegex(ValueError, r'meta_batch_size=3: .*2 replicas'):
      distribute.check_meta_batch_size(TwoReplicas(), 3)

  def test_flag_reaches_the_config(self):
    from absl import flags  # pylint: disable=g-import-not-at-top
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values(['prog', '--strategy=mirrored', '--meta_batch_size=2'])
    config = cli.config_from_flags(flag_values)
    self.assertEqual(config.runtime.strategy, 'mirrored')
    self.assertIsNone(config.runtime.tpu_address)
    with self.assertRaises(flags.IllegalFlagValueError):
      flag_values(['prog', '--strategy=nccl'])


class SplitEpisodesTest(tf.test.TestCase, parameterized.TestCase):
  """Replica shares of step s are exactly batch s of the one-device stream."""

  @parameterized.parameters(
      (4, 2, [[0, 1]], 3),        # Mirrored: one pipeline feeds both.
      (4, 2, [[0], [1]], 0),      # Two workers, one replica each.
      (6, 3, [[0, 1, 2]], 6),
      (4, 4, [[0, 1], [2, 3]], 8),  # Two workers, two replicas each.
  )
  def test_shares_tile_the_single_device_batches(self, batch, replicas,
                                                 pipelines, start_index):
    pool = pool_fixtures.synthetic_pools().meta_train
    episode = config_lib.EpisodeConfig(3, 1, 2)
    steps = 3

    def take(dataset, count):
      return [e.query_images.numpy() for e in dataset.take(count)]

    single = take(episodes_lib.make_episode_dataset(
        pool, episode, batch, 5, start_index=start_index), steps)
    shares = {}
    for replica_ids in pipelines:
      elements = take(episodes_lib.make_episode_dataset(
          pool, episode, batch, 5, start_index=start_index,
          num_replicas=replicas, replica_ids=replica_ids),
                      steps * len(replica_ids))
      for k, element in enumerate(elements):
        self.assertLen(element, batch // replicas)
        shares[(k // len(replica_ids), replica_ids[k % len(replica_ids)])] = (
            element)
    for s in range(steps):
      self.assertAllEqual(
          np.concatenate([shares[(s, r)] for r in range(replicas)]),
          single[s])

  def test_bad_split(self):
    pool = pool_fixtures.synthetic_pools().meta_train
    episode = config_lib.EpisodeConfig(3, 1, 2)
    with self.assertRaisesRegex(ValueError, 'meta_batch_size=3'):
      episodes_lib.make_episode_dataset(pool, episode, 3, 0, num_replicas=2,
                                        replica_ids=[0, 1])
    with self.assertRaisesRegex(ValueError, 'replica_ids'):
      episodes_lib.make_episode_dataset(pool, episode, 4, 0, num_replicas=2,
                                        replica_ids=[2])


class MirroredTest(tf.test.TestCase):
  """MirroredStrategy over two logical CPU devices, in a fresh process."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.out_dir = tempfile.mkdtemp()
    out_path = os.path.join(cls.out_dir, 'report.json')
    result = subprocess.run(
        [sys.executable, WORKER, 'equality', out_path], cwd=REPO,
        env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S,
        check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    with open(out_path) as f:
      cls.report = json.load(f)

  def test_two_replicas(self):
    self.assertEqual(self.report['replicas'], 2)

  def test_update_equals_single_device(self):
    # SGD: the parameters move by the gradient itself, so a missing or a
    # double all-reduce, or clipping before the reduction, shows; Adam with
    # clipping is the training setup.
    for name, tolerance in (('sgd', 1e-6), ('sgd_clipped', 1e-6),
                            ('adam_clipped', 1e-5)):
      steps = self.report['steps'][name]
      self.assertGreater(steps['max_param_change'], 1e-3, msg=name)
      self.assertLess(steps['max_param_diff'], tolerance, msg=name)
      self.assertEqual(steps['iterations'], [2, 2], msg=name)
      for key in ('loss', 'accuracy', 'grad_norm'):
        self.assertAllClose(steps['single_metrics'][key],
                            steps['split_metrics'][key], rtol=1e-5,
                            msg=f'{name} {key}')

  def test_train_and_evaluate_matches_single_device(self):
    train = self.report['train']
    self.assertLess(train['max_param_diff'], 1e-5)
    default, mirrored = train['results']['default'], train['results'][
        'mirrored']
    self.assertEqual(mirrored['num_replicas'], 2)
    for key in ('steps', 'best_step', 'test_episodes'):
      self.assertEqual(mirrored[key], default[key], msg=key)
    for key in ('test_accuracy', 'valid_accuracy', 'test_loss'):
      self.assertAllClose(mirrored[key], default[key], atol=1e-4, msg=key)
    self.assertContainsSubset(
        ['best', 'checkpoints', 'config.json', 'flags.txt', 'logs',
         'results.json', 'export'], train['files']['mirrored'])
    self.assertTrue(os.path.isdir(mirrored['export_path']))


class MultiWorkerTest(tf.test.TestCase):

  def _run_two_workers(self):
    """(out_dir, workdir, [(returncode, stdout, stderr)] of the 2 workers)."""
    ports = [_free_port(), _free_port()]
    out_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    workdir = os.path.join(out_dir, 'run')
    cluster = {'worker': [f'127.0.0.1:{port}' for port in ports]}
    processes = []
    for index in range(2):
      tf_config = json.dumps({'cluster': cluster,
                              'task': {'type': 'worker', 'index': index}})
      processes.append(subprocess.Popen(
          [sys.executable, WORKER, 'multi_worker', out_dir, workdir],
          cwd=REPO, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
      for process in processes:
        outputs.append(process.communicate(timeout=TIMEOUT_S))
    finally:
      for process in processes:
        if process.poll() is None:
          process.kill()
          process.wait()
    return out_dir, workdir, [(process.returncode, stdout, stderr)
                              for process, (stdout, stderr)
                              in zip(processes, outputs)]

  def test_two_workers_on_localhost(self):
    # A worker starved of CPU for longer than TensorFlow's coordination
    # heartbeat (the whole suite on 2 cores) is declared dead by its peer:
    # that infrastructure error, and only it, is retried once.
    for attempt in range(2):
      out_dir, workdir, results = self._run_two_workers()
      timed_out = any(code != 0 and 'heartbeat timeout' in stderr
                      for code, _, stderr in results)
      if not timed_out or attempt == 1:
        break
    for code, _, stderr in results:
      self.assertEqual(code, 0, msg=stderr[-4000:])
    reports = [json.loads(stdout.strip().splitlines()[-1])
               for _, stdout, _ in results]
    self.assertEqual([r['chief'] for r in reports], [True, False])
    self.assertEqual([r['replicas'] for r in reports], [2, 2])
    self.assertEqual([r['steps'] for r in reports], [3, 3])

    params = [np.load(os.path.join(out_dir, f'params_{i}.npy'))
              for i in range(2)]
    self.assertAllClose(params[0], params[1], atol=1e-6)
    initial = rules.make_rule(pool_fixtures.tiny_config())
    initial = np.concatenate([np.reshape(v.numpy(), [-1])
                              for v in initial.trainable_variables])
    self.assertGreater(np.max(np.abs(params[0] - initial)), 1e-4)
    # Only the chief's files are in the workdir.
    self.assertEqual(tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints')),
                     os.path.join(workdir, 'checkpoints', 'ckpt-3'))
    self.assertTrue(os.path.exists(os.path.join(workdir, 'results.json')))


class DefaultStrategyTest(tf.test.TestCase):
  """train_and_evaluate with an explicit strategy argument, one device."""

  def setUp(self):
    super().setUp()
    self._original = pools_lib.make_class_pools
    pools = pool_fixtures.synthetic_pools()
    pools_lib.make_class_pools = lambda data_config: pools

  def tearDown(self):
    pools_lib.make_class_pools = self._original
    super().tearDown()

  def test_single_replica_mirrored_needs_no_special_batch(self):
    # A one-device MirroredStrategy takes the distributed path (its own
    # dataset, step and all-reduce); it must train exactly as the default
    # strategy does on the same episodes.
    runs = {}
    for name, strategy in (
        ('default', None),
        ('mirrored', tf.distribute.MirroredStrategy(['/cpu:0']))):
      workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
      results = train_lib.train_and_evaluate(
          pool_fixtures.tiny_config(max_steps=2, eval_every=2,
                                    strategy=name),
          workdir, strategy=strategy)
      restored, _, _ = checkpoints.restore_rule(
          workdir, os.path.join(workdir, 'checkpoints', 'ckpt-2'))
      runs[name] = results, np.concatenate(
          [np.ravel(v.numpy()) for v in restored.trainable_variables])
    (default, default_params), (mirrored, mirrored_params) = (
        runs['default'], runs['mirrored'])
    self.assertEqual(mirrored['num_replicas'], 1)
    self.assertEqual(mirrored['steps'], 2)
    initial = np.concatenate([np.ravel(v.numpy()) for v in rules.make_rule(
        pool_fixtures.tiny_config()).trainable_variables])
    self.assertGreater(np.max(np.abs(default_params - initial)), 1e-4)
    self.assertAllClose(mirrored_params, default_params, rtol=0, atol=1e-6)
    for key in ('test_loss', 'valid_accuracy', 'test_accuracies'):
      self.assertAllClose(mirrored[key], default[key], rtol=1e-6, atol=1e-6,
                          msg=key)
