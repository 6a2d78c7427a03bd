"""The pretraining: batches, resume, cache, settings."""

import os
from unittest import mock

import numpy as np
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf.baselines import pretrain_data
from meta_lstm_tf.baselines import pretraining
from tests.fixtures import baselines as fixtures

_SIZE = fixtures.SIZE


class _Interrupt(Exception):
  pass


class PretrainTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.pools = fixtures.separable_pools()
    self.config = fixtures.config()
    self.baseline_config = baselines.BaselineConfig(pretrain_steps=60,
                                                    batch_size=32,
                                                    learning_rate=1e-2, seed=3)

  def test_dataset_pairs_images_with_their_class_and_resumes(self):
    values = np.arange(6, dtype=np.float32)[:, None, None, None, None] / 10
    images = np.broadcast_to(values, (6, 4, _SIZE, _SIZE, 1)).copy()
    # Drawing j of class c differs per drawing too.
    images[:, :, 0, 0, 0] = np.arange(4, dtype=np.float32) + 5.0
    dataset = pretrain_data.make_pretrain_dataset(images, 16, seed=1)
    batches = [b for b, _ in zip(dataset, range(5))]
    for batch_images, labels in batches:
      self.assertEqual(batch_images.shape, (16, _SIZE, _SIZE, 1))
      self.assertAllClose(batch_images[:, 1, 1, 0],
                          labels.numpy().astype(np.float32) / 10)
    drawn = np.concatenate([b[1].numpy() for b in batches])
    self.assertGreater(len(np.unique(drawn)), 3)
    resumed = next(
        iter(
            pretrain_data.make_pretrain_dataset(images, 16, seed=1,
                                                start_step=3)))
    self.assertAllEqual(resumed[0], batches[3][0])
    self.assertAllEqual(resumed[1], batches[3][1])
    other = next(iter(pretrain_data.make_pretrain_dataset(images, 16, seed=2)))
    self.assertNotAllEqual(other[1], batches[0][1])

  def test_pretraining_lowers_the_loss_and_is_cached(self):
    out_dir = fixtures.new_dir(self)
    result = baselines.pretrain(self.config, self.baseline_config, out_dir,
                                self.pools)
    self.assertFalse(result['reused'])
    self.assertEqual(result['steps'], 60)
    self.assertGreater(result['seconds'], 0.0)
    self.assertEqual(result['num_classes'], 8)
    self.assertEqual(result['learner_config']['num_ways'], 8)
    self.assertLess(result['final_loss'], 0.3 * result['initial_loss'])
    self.assertGreater(result['final_accuracy'], 0.8)
    self.assertEqual(result['params'].shape,
                     fixtures.init_feature_params().shape)
    self.assertEqual(result['head_params'].shape, (16 * 8 + 8, ))
    for name in (pretraining.SETTINGS_FILE, pretraining.PARAMS_FILE,
                 pretraining.RESULT_FILE):
      self.assertTrue(os.path.exists(os.path.join(out_dir, name)), name)

    with mock.patch.object(pretraining, 'make_pretrain_step',
                           side_effect=AssertionError('trained again')):
      again = baselines.pretrain(self.config, self.baseline_config, out_dir,
                                 self.pools)
    self.assertTrue(again['reused'])
    self.assertAllEqual(again['params'], result['params'])
    self.assertEqual(again['steps'], 60)
    self.assertEqual(again['seconds'], result['seconds'])

    # The pretrained features serve every N: here a 5-way evaluation.
    results = baselines.evaluate_baselines(
        fixtures.config(num_ways=5),
        baselines.BaselineConfig(finetune_learning_rates=(0.1, ),
                                 finetune_steps=(10, ), selection_episodes=4),
        again, self.pools)
    self.assertGreaterEqual(results['nearest_neighbour']['test_accuracy'], 0.9)
    self.assertEqual(results['finetune']['pretrain_steps'], 60)

    with self.assertRaisesRegex(ValueError, 'other settings.*pretrain_steps'):
      baselines.pretrain(self.config,
                         baselines.BaselineConfig(pretrain_steps=61), out_dir,
                         self.pools)

  def test_interrupted_pretraining_resumes_where_it_stopped(self):
    whole_dir = fixtures.new_dir(self)
    resumed_dir = fixtures.new_dir(self)
    baseline_config = baselines.BaselineConfig(pretrain_steps=20, batch_size=16,
                                               learning_rate=1e-2, seed=4)
    with mock.patch.object(pretraining, '_CHECKPOINT_EVERY', 5):
      whole = baselines.pretrain(self.config, baseline_config, whole_dir,
                                 self.pools)
      real_make_step = pretraining.make_pretrain_step

      def make_step_failing_at_12(*args):
        step = real_make_step(*args)
        count = [0]

        def counted(*batch):
          count[0] += 1
          if count[0] == 13:
            raise _Interrupt()
          return step(*batch)

        return counted

      with mock.patch.object(pretraining, 'make_pretrain_step',
                             make_step_failing_at_12):
        with self.assertRaises(_Interrupt):
          baselines.pretrain(self.config, baseline_config, resumed_dir,
                             self.pools)
      self.assertFalse(
          os.path.exists(os.path.join(resumed_dir, pretraining.RESULT_FILE)))
      resumed = baselines.pretrain(self.config, baseline_config, resumed_dir,
                                   self.pools)
    self.assertEqual(resumed['steps'], 20)
    self.assertAllClose(resumed['params'], whole['params'], rtol=1e-5,
                        atol=1e-6)
    self.assertAllClose(resumed['head_params'], whole['head_params'], rtol=1e-5,
                        atol=1e-6)

  def test_time_budget_stops_early(self):
    baseline_config = baselines.BaselineConfig(pretrain_steps=100000,
                                               pretrain_seconds=1.0,
                                               batch_size=8)
    result = baselines.pretrain(self.config, baseline_config,
                                fixtures.new_dir(self), self.pools)
    self.assertLess(result['steps'], 100000)
    self.assertGreaterEqual(result['seconds'], 1.0)


if __name__ == '__main__':
  tf.test.main()
