"""train_and_evaluate on small synthetic pools: results, resume, failures."""

import contextlib
import io
import json
import os
import signal
import tempfile
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf.training import checkpoints
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf import file_lock
from meta_lstm_tf import rules
from meta_lstm_tf.training import stopping
from meta_lstm_tf.training import train_lib
from meta_lstm_tf.training import train_steps
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.data import pools as pools_lib
from meta_lstm_tf.serving import export as serving_export
from tests.fixtures import locks
from tests.fixtures import pools as pool_fixtures
from tests.fixtures import summaries as event_files

synthetic_pools = pool_fixtures.synthetic_pools
tiny_config = pool_fixtures.tiny_config


class _SignalAfter:
  """Stands in for `stopping.SignalFlag`: SIGINT once `steps` steps ran
  (the loop reads `signum` once after each step)."""

  def __init__(self, steps: int):
    self._reads_left = steps

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False

  @property
  def signum(self):
    self._reads_left -= 1
    return signal.SIGINT if self._reads_left <= 0 else None


class TrainLibTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self._original = pools_lib.make_class_pools
    self.pools = synthetic_pools()
    pools_lib.make_class_pools = lambda data_config: self.pools

  def tearDown(self):
    pools_lib.make_class_pools = self._original
    super().tearDown()

  def test_results_and_run_records(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    # Validation runs at steps 3 and 6; the one at the last step is made to
    # score 0, so the best checkpoint is step 3's and the test must restore
    # it rather than test the last parameters. The parameters in use during
    # each evaluation are recorded.
    made, evaluations = [], []
    make_rule, evaluate = rules.make_rule, evaluation.evaluate

    def recording_make_rule(config):
      made.append(make_rule(config))
      return made[-1]

    def recording_evaluate(eval_step, batches):
      result = evaluate(eval_step, batches)
      if len(evaluations) == 1:  # Validation at step 6.
        result = dict(result, accuracy=0.0)
      evaluations.append((result, [v.numpy()
                                   for v in made[0].trainable_variables]))
      return result

    with mock.patch.object(rules, 'make_rule', recording_make_rule), \
         mock.patch.object(evaluation, 'evaluate', recording_evaluate):
      results = train_lib.train_and_evaluate(tiny_config(), workdir,
                                             '--x=1\n')
    (valid_3, _), (valid_6, _), (test, tested) = evaluations
    self.assertEqual((valid_3['episodes'], valid_6['episodes'],
                      test['episodes']), (4, 4, 5))
    self.assertGreater(valid_3['accuracy'], 0.0)
    self.assertEqual(results['best_step'], 3)
    self.assertEqual(results['valid_accuracy'], valid_3['accuracy'])
    self.assertEqual(results['best_checkpoint'],
                     os.path.join(workdir, 'best', 'ckpt-3'))
    self.assertEqual(results['test_loss'], test['loss'])
    best, _, _ = checkpoints.restore_rule(workdir, results['best_checkpoint'])
    last, _, _ = checkpoints.restore_rule(
        workdir, os.path.join(workdir, 'checkpoints', 'ckpt-6'))
    for value, at_best in zip(tested, best.trainable_variables):
      self.assertAllEqual(value, at_best)
    self.assertNotAllClose(np.concatenate([v.ravel() for v in tested]),
                           np.concatenate([np.ravel(v)
                                           for v in last.trainable_variables]))
    with open(os.path.join(workdir, 'results.json')) as f:
      on_disk = json.load(f)
    self.assertEqual(on_disk, json.loads(json.dumps(results)))
    for key in ('test_accuracy', 'test_ci95', 'test_episodes', 'num_ways',
                'num_shots', 'inner_steps', 'steps', 'best_step',
                'valid_accuracy', 'train_seconds'):
      self.assertIn(key, results)
    # The reported test accuracy is the mean over the recorded episodes, each
    # a whole number of the 3 x 2 = 6 queries right, and its CI theirs.
    per_episode = np.asarray(results['test_accuracies'])
    self.assertLen(per_episode, 5)
    self.assertAllClose(per_episode * 6, np.round(per_episode * 6), atol=1e-5)
    mean, ci95 = evaluation.mean_and_ci95(per_episode)
    self.assertAlmostEqual(results['test_accuracy'], mean, places=6)
    self.assertAlmostEqual(results['test_ci95'], ci95, places=6)
    self.assertEqual(results['test_episodes'], 5)
    self.assertEqual(results['steps'], 6)
    self.assertTrue(os.path.exists(os.path.join(workdir, 'config.json')))
    self.assertTrue(os.path.exists(os.path.join(workdir, 'flags.txt')))
    self.assertNotEmpty(tf.io.gfile.glob(os.path.join(workdir, 'logs', 'train',
                                                      'events*')))
    # Every metric the HParams dashboard is told of is in its run's logs;
    # the test accuracy at the last step.
    logs = os.path.join(workdir, 'logs')
    metrics = event_files.declared_metrics(logs)
    self.assertIn(('test', 'accuracy'), metrics)
    for group, tag in metrics:
      logged = event_files.scalars(os.path.join(logs, group))
      self.assertIn(tag, {t for t, _ in logged}, msg=group)
    self.assertAlmostEqual(
        event_files.scalars(os.path.join(logs, 'test'))[('accuracy', 6)],
        results['test_accuracy'], places=6)

  def test_workdir_on_another_file_system(self):
    """A ram:// workdir (TensorFlow's in-memory file system, as gs:// would
    be): records, checkpoints, logs and the export all go there, nothing
    to the working directory, and the run resumes from it."""
    here = tempfile.mkdtemp(dir=self.get_temp_dir())
    cwd = os.getcwd()
    os.chdir(here)
    self.addCleanup(os.chdir, cwd)
    workdir = f'ram://test_train_lib_{os.getpid()}_{id(self)}/run'
    config = tiny_config(max_steps=4, export=True)
    with self.assertLogs(level='WARNING') as logs:
      first = train_lib.train_and_evaluate(config, workdir, '--x=1\n')
    self.assertTrue(any('is not on a local file system' in line
                        for line in logs.output))
    names = {name.rstrip('/') for name in tf.io.gfile.listdir(workdir)}
    self.assertEqual(names, {'config.json', 'flags.txt', 'results.json',
                             'checkpoints', 'best', 'logs', 'export'})
    self.assertEqual(workdir_lib.load_config(workdir), config)
    self.assertEqual(workdir_lib.read_json(f'{workdir}/results.json'),
                     json.loads(json.dumps(first)))
    self.assertTrue(tf.io.gfile.exists(f'{workdir}/checkpoints/ckpt-4.index'))
    self.assertNotEmpty(tf.io.gfile.glob(f'{workdir}/logs/valid/events*'))
    self.assertEqual(first['export_path'], f'{workdir}/export/1')
    self.assertEqual(serving_export.read_metadata(first['export_path'])[
        'model'], 'adapt_and_classify')
    self.assertIn('serving_default',
                  tf.saved_model.load(first['export_path']).signatures)
    # Resumed with a larger budget: the same numbers as a local run
    # trained in one go; the first results kept aside.
    resumed = train_lib.train_and_evaluate(tiny_config(export=True), workdir)
    full = train_lib.train_and_evaluate(
        tiny_config(), tempfile.mkdtemp(dir=self.get_temp_dir()))
    self.assertEqual(resumed['steps'], 6)
    for key in ('test_loss', 'valid_accuracy', 'best_step'):
      self.assertEqual(resumed[key], full[key], msg=key)
    self.assertEqual(
        workdir_lib.read_json(f'{workdir}/results_previous.json')['steps'],
        4)
    self.assertEqual(resumed['export_path'], f'{workdir}/export/2')
    self.assertEqual(os.listdir(here), [])

  def test_resume_equals_uninterrupted(self):
    full_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    full = train_lib.train_and_evaluate(tiny_config(), full_dir)
    part_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=4), part_dir)
    resumed = train_lib.train_and_evaluate(tiny_config(), part_dir)
    for key in ('test_accuracy', 'test_loss', 'valid_accuracy', 'best_step',
                'steps'):
      self.assertEqual(resumed[key], full[key], msg=key)

  def test_cosine_schedule_changes_training_and_resumes_the_same(self):
    cosine = dict(lr_schedule='cosine', learning_rate=0.01,
                  final_learning_rate=0.0)
    full = train_lib.train_and_evaluate(
        tiny_config(**cosine), tempfile.mkdtemp(dir=self.get_temp_dir()))
    self.assertEqual((full['lr_schedule'], full['learning_rate']),
                     ('cosine', 0.01))
    # The same run stopped by a signal after 4 of its 6 steps (the rate of a
    # step depends on max_steps, so the run must not change), then resumed.
    part_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    with mock.patch.object(stopping, 'SignalFlag',
                           lambda: _SignalAfter(steps=4)):
      with self.assertRaises(stopping.TrainingInterrupted):
        train_lib.train_and_evaluate(tiny_config(**cosine), part_dir)
    resumed = train_lib.train_and_evaluate(tiny_config(**cosine), part_dir)
    self.assertEqual(resumed['steps'], 6)
    self.assertEqual(resumed['test_loss'], full['test_loss'])
    constant = train_lib.train_and_evaluate(
        tiny_config(learning_rate=0.01),
        tempfile.mkdtemp(dir=self.get_temp_dir()))
    self.assertNotEqual(constant['test_loss'], full['test_loss'])

  def test_trainval_trains_on_valid_classes_and_tests_the_last_checkpoint(
      self):
    plain = train_lib.train_and_evaluate(
        tiny_config(), tempfile.mkdtemp(dir=self.get_temp_dir()))
    trainval = train_lib.train_and_evaluate(
        tiny_config(trainval=True), tempfile.mkdtemp(dir=self.get_temp_dir()))
    self.assertTrue(trainval['trainval'])
    self.assertEqual(trainval['best_step'], 6)  # The last validation.
    # Other meta-train episodes (the pool has the meta-valid classes too).
    self.assertNotEqual(trainval['test_loss'], plain['test_loss'])

  @parameterized.parameters('sgd', 'meta_sgd')
  def test_rule_meta_trains_checkpoints_and_resumes(self, rule):
    full_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    full = train_lib.train_and_evaluate(tiny_config(rule), full_dir)
    self.assertEqual(full['update_rule'], rule)
    part_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(rule, max_steps=4), part_dir)
    resumed = train_lib.train_and_evaluate(tiny_config(rule), part_dir)
    for key in ('test_accuracy', 'test_loss', 'valid_accuracy', 'best_step'):
      self.assertEqual(resumed[key], full[key], msg=key)
    # Every meta-parameter of the rule was trained and checkpointed.
    restored, _, _ = checkpoints.restore_rule(
        full_dir,
        tf.train.latest_checkpoint(os.path.join(full_dir, 'checkpoints')))
    fresh = rules.make_rule(tiny_config(rule))
    self.assertEqual(type(restored), type(fresh))
    self.assertLen(restored.trainable_variables, 1 if rule == 'sgd' else 2)
    for trained, initial in zip(restored.trainable_variables,
                                fresh.trainable_variables):
      self.assertNotAllClose(trained, initial, msg=trained.name)

  def test_nan_loss_stops_and_keeps_last_good_checkpoint(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=2), workdir)
    self.pools = synthetic_pools(nan=True)
    with self.assertRaisesRegex(stopping.TrainingDivergedError,
                                r'meta-loss is nan at step 3.*ckpt-2'):
      train_lib.train_and_evaluate(tiny_config(), workdir)
    self.assertEqual(tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints')),
                     os.path.join(workdir, 'checkpoints', 'ckpt-2'))

  def test_refuses_workdir_of_another_experiment(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=2), workdir)
    other = tiny_config(max_steps=2)
    other = other.__class__(**{**other.__dict__, 'inner_loop':
                               config_lib.InnerLoopConfig(inner_steps=3)})
    with self.assertRaisesRegex(ValueError, 'inner_loop'):
      train_lib.train_and_evaluate(other, workdir)

  def test_episode_too_big_for_pool_fails_before_training(self):
    self.pools = synthetic_pools(drawings=2)
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    with self.assertRaisesRegex(ValueError, 'num_shots|num_queries|drawings'):
      train_lib.train_and_evaluate(tiny_config(), workdir)
    self.assertFalse(os.path.exists(os.path.join(workdir, 'checkpoints')))

  @parameterized.parameters('meta_lstm', 'sgd')
  def test_init_from_pretrained(self, rule):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    config = tiny_config(rule, max_steps=2, eval_every=2, learning_rate=1e-9,
                         init_from='pretrained', init_pretrain_steps=30,
                         init_pretrain_seconds=0.0,
                         init_pretrain_batch_size=8)
    results = train_lib.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, 'pretrain', 'pretrain.json')) as f:
      pretrained = json.load(f)
    self.assertEqual(pretrained['steps'], 30)
    self.assertLess(pretrained['final_loss'], pretrained['initial_loss'])
    # The pretraining is charged to the meta-training time budget.
    self.assertGreaterEqual(results['train_seconds'], pretrained['seconds'])
    with np.load(os.path.join(workdir, 'pretrain', 'pretrained.npz')) as f:
      features = f['feature_params']
    restored, _, _ = checkpoints.restore_rule(workdir)
    theta0 = restored.initial_params.numpy()
    # theta_0 = [pretrained conv/BN, zero head] (moved only by two Adam
    # steps of size ~1e-9).
    self.assertAllClose(theta0[:features.size], features, atol=1e-6)
    self.assertAllClose(theta0[features.size:],
                        np.zeros(theta0.size - features.size), atol=1e-6)
    scratch = rules.make_rule(tiny_config(rule))
    self.assertNotAllClose(theta0[:features.size],
                           scratch.initial_params.numpy()[:features.size])
    # A rerun resumes from the checkpoint; it does not pretrain again.
    again = train_lib.train_and_evaluate(config, workdir)
    self.assertEqual(again['test_accuracy'], results['test_accuracy'])

  def test_second_run_on_a_busy_workdir_fails_at_once_naming_the_pid(self):
    workdir = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), 'w')
    holder = locks.hold_lock(workdir)
    try:
      with self.assertRaisesRegex(file_lock.DirectoryBusyError,
                                  f'in use by pid {holder.pid}'):
        train_lib.train_and_evaluate(tiny_config(), workdir)
    finally:
      holder.kill()
      holder.wait()
    self.assertEqual(os.listdir(workdir), ['.lock'])  # Nothing written.

  def test_changed_settings_on_resume_are_refused_and_each_named(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=2), workdir)
    with open(os.path.join(workdir, 'config.json')) as f:
      before = f.read()
    with self.assertRaises(ValueError) as raised:
      train_lib.train_and_evaluate(
          tiny_config(max_steps=4, seed=4, learning_rate=0.01), workdir)
    self.assertIn('train.seed: 3 -> 4', str(raised.exception))
    self.assertIn('train.learning_rate: 0.001 -> 0.01', str(raised.exception))
    with open(os.path.join(workdir, 'config.json')) as f:
      self.assertEqual(f.read(), before)  # Not overwritten.
    # An extended budget needs no permission; other changes need one.
    self.assertEqual(train_lib.train_and_evaluate(
        tiny_config(max_steps=4), workdir)['steps'], 4)
    changed = train_lib.train_and_evaluate(
        tiny_config(max_steps=6, seed=4), workdir, allow_config_change=True)
    self.assertEqual(changed['seed'], 4)
    with open(os.path.join(workdir, 'config_changes.json')) as f:
      history = json.load(f)
    self.assertEqual([c['field'] for c in history[-1]['changes']],
                     ['train.max_steps', 'train.seed'])

  def test_truncated_latest_checkpoint_falls_back_and_the_run_continues(self):
    full = train_lib.train_and_evaluate(
        tiny_config(), tempfile.mkdtemp(dir=self.get_temp_dir()))
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=4), workdir)
    data = os.path.join(workdir, 'checkpoints', 'ckpt-4.data-00000-of-00001')
    with open(data, 'r+b') as f:
      f.truncate(os.path.getsize(data) // 3)
    with self.assertLogs(level='WARNING') as logs:
      resumed = train_lib.train_and_evaluate(tiny_config(), workdir)
    self.assertTrue(any('ckpt-4' in line and 'does not restore' in line
                        for line in logs.output))
    # Resumed from ckpt-2 and redid steps 3-4: the same run as without the
    # damage (episodes depend only on the seed and the step).
    self.assertEqual(resumed['steps'], 6)
    self.assertEqual(resumed['test_loss'], full['test_loss'])

  def test_deleted_or_corrupt_state_file_is_an_error_not_a_fresh_start(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=4), workdir)
    best = sorted(os.listdir(os.path.join(workdir, 'best')))
    state = os.path.join(workdir, 'checkpoints', 'checkpoint')
    os.remove(state)
    with self.assertRaisesRegex(checkpoints.CheckpointStateError,
                                'checkpoint is missing but ckpt-2, ckpt-4 are '
                                'present'):
      train_lib.train_and_evaluate(tiny_config(max_steps=6), workdir)
    with open(state, 'w') as f:
      f.write('garbage {{{')
    with self.assertRaisesRegex(checkpoints.CheckpointStateError,
                                'unreadable'):
      train_lib.train_and_evaluate(tiny_config(max_steps=6), workdir)
    # The best checkpoint survived both attempts.
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, 'best'))), best)

  def test_disk_full_while_saving_ends_in_one_error_line(self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    train_lib.train_and_evaluate(tiny_config(max_steps=2), workdir)
    original_save = tf.train.CheckpointManager.save

    def save(manager, *args, **kwargs):
      if 'checkpoints' in manager.directory and kwargs.get(
          'checkpoint_number') == 4:
        raise tf.errors.ResourceExhaustedError(
            None, None, 'ckpt-4_temp/part-00000: No space left on device\n'
            '\t [[{{node SaveV2}}]]')
      return original_save(manager, *args, **kwargs)

    stderr = io.StringIO()
    with mock.patch.object(tf.train.CheckpointManager, 'save', save):
      with contextlib.redirect_stderr(stderr):
        with self.assertRaises(SystemExit) as exited:
          with stopping.exit_on_error():
            train_lib.train_and_evaluate(tiny_config(), workdir)
    self.assertEqual(exited.exception.code, 1)
    self.assertEqual(stderr.getvalue(),
                     'error: ResourceExhaustedError: ckpt-4_temp/part-00000: '
                     'No space left on device\n')
    # The previous checkpoint is intact: the run resumes from it.
    self.assertEqual(tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints')),
                     os.path.join(workdir, 'checkpoints', 'ckpt-2'))
    self.assertEqual(train_lib.train_and_evaluate(tiny_config(),
                                                  workdir)['steps'], 6)

  def test_finished_run_rerun_is_a_no_op_and_a_failed_export_loses_nothing(
      self):
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    stale = os.path.join(workdir, 'export', '.tmp-export-killed')
    os.makedirs(stale)
    with mock.patch.object(serving_export, 'export_adapt_and_classify',
                           side_effect=OSError(28, 'No space left on device')):
      with self.assertRaises(OSError):
        train_lib.train_and_evaluate(tiny_config(export=True), workdir)
    # The test's results were written before the export failed.
    with open(os.path.join(workdir, 'results.json')) as f:
      tested = json.load(f)
    self.assertNotIn('export_path', tested)
    self.assertFalse(os.path.exists(stale))
    # The rerun trains and tests nothing; it only exports.
    with mock.patch.object(train_steps, 'make_meta_train_step',
                           side_effect=AssertionError('trained again')), \
         mock.patch.object(train_lib, '_test_best',
                           side_effect=AssertionError('tested again')):
      exported = train_lib.train_and_evaluate(tiny_config(export=True),
                                              workdir)
      self.assertEqual(os.listdir(os.path.join(workdir, 'export')), ['1'])
      self.assertEqual(exported['test_loss'], tested['test_loss'])
      self.assertEqual(exported['export_path'],
                       os.path.join(workdir, 'export', '1'))
      # Once more: nothing at all, no new export version.
      again = train_lib.train_and_evaluate(tiny_config(export=True), workdir)
    self.assertEqual(again, exported)
    self.assertEqual(os.listdir(os.path.join(workdir, 'export')), ['1'])

  def test_mean_and_ci95(self):
    mean, ci = evaluation.mean_and_ci95([0.0, 1.0, 0.0, 1.0])
    self.assertAlmostEqual(mean, 0.5)
    self.assertAlmostEqual(ci, 1.96 * 0.5 / 2)
