"""Both baselines on fixed episodes: fine-tuning, selection, bad input."""

from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf.baselines import finetune as finetune_lib
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import episodes as episodes_lib
from tests.fixtures import baselines as fixtures

_SIZE = fixtures.SIZE
_LEARNER = fixtures.LEARNER


class EvaluateBaselinesTest(tf.test.TestCase):

  def test_separable_episodes_are_solved(self):
    config = fixtures.config()
    baseline_config = baselines.BaselineConfig(finetune_learning_rates=(0.5, ),
                                               finetune_steps=(20, ),
                                               selection_episodes=8)
    pretrained = {
        'params': fixtures.init_feature_params(),
        'steps': 7,
        'seconds': 1.5
    }
    results = baselines.evaluate_baselines(config, baseline_config, pretrained,
                                           fixtures.separable_pools())
    for name in ('nearest_neighbour', 'finetune'):
      result = results[name]
      self.assertGreaterEqual(result['test_accuracy'], 0.95, name)
      self.assertGreaterEqual(result['valid_accuracy'], 0.95, name)
      self.assertEqual(result['test_episodes'], 8)
      self.assertEqual(result['valid_episodes'], 8)
      self.assertEqual(result['pretrain_steps'], 7)
      self.assertEqual(result['pretrain_seconds'], 1.5)
      for key in ('test_ci95', 'eval_seconds', 'selection_seconds'):
        self.assertGreaterEqual(result[key], 0.0)
    self.assertEqual(results['finetune']['learning_rate'], 0.5)
    self.assertEqual(results['finetune']['inner_steps'], 20)

  def test_finetune_runs_the_inner_loop_from_a_zero_head(self):
    rule = finetune_lib.make_finetune_rule(fixtures.init_feature_params(),
                                           _LEARNER, 0.3)
    self.assertEqual(rule.learning_rate, 0.3)
    theta0 = rule.initial_params.numpy()
    num_features = fixtures.init_feature_params().shape[0]
    self.assertAllEqual(theta0[:num_features], fixtures.init_feature_params())
    self.assertAllEqual(theta0[num_features:],
                        np.zeros(theta0.size - num_features))
    # Fine-tuning lowers the support loss of a separable episode.
    episode = episodes_lib.sample_episode(
        fixtures.separable_pool(3, 5, seed=7).images,
        config_lib.EpisodeConfig(3, 1, 2), tf.constant([5, 6]))
    _, result = inner_loop.adapt_and_classify(
        rule, episode.support_images, episode.support_labels,
        episode.query_images,
        finetune_lib.finetune_inner_config(fixtures.config(),
                                           5), training=False)
    losses = result.support_losses.numpy()
    self.assertAllClose(losses[0], np.log(3.0), atol=1e-5)  # zero head
    self.assertLess(losses[-1], 0.5 * losses[0])

  def test_selection_uses_meta_valid_only(self):
    # meta_valid and meta_test are told apart by their pixel value; the fake
    # accuracies make meta_test prefer another setting than meta_valid.
    valid_table = {
        (0.01, 5): 0.5,
        (0.01, 20): 0.9,
        (0.1, 5): 0.6,
        (0.1, 20): 0.7
    }
    test_table = {
        (0.01, 5): 0.4,
        (0.01, 20): 0.3,
        (0.1, 5): 0.95,
        (0.1, 20): 0.5
    }
    calls = []

    def fake_evaluate(feature_params, config, learning_rate, inner_steps,
                      batches):
      del feature_params, config
      level = float(batches[0].support_images[0, 0, 0, 0, 0])
      split = 'valid' if abs(level - 0.25) < 1e-6 else 'test'
      episodes = sum(int(b.support_images.shape[0]) for b in batches)
      calls.append((split, learning_rate, inner_steps, episodes))
      table = valid_table if split == 'valid' else test_table
      accuracy = table[(learning_rate, inner_steps)]
      return {
          'accuracy': accuracy,
          'ci95': 0.01,
          'loss': 0.0,
          'episodes': episodes,
          'accuracies': [accuracy] * episodes
      }

    pools = class_pools.ClassPools(meta_train=fixtures.constant_pool(4, 6, 0.5),
                              meta_valid=fixtures.constant_pool(4, 6, 0.25),
                              meta_test=fixtures.constant_pool(4, 6, 0.75))
    baseline_config = baselines.BaselineConfig(
        finetune_learning_rates=(0.01, 0.1), finetune_steps=(5, 20),
        selection_episodes=6)
    with mock.patch.object(finetune_lib, 'evaluate_finetune', fake_evaluate):
      results = baselines.evaluate_baselines(
          fixtures.config(test_episodes=9), baseline_config,
          {'params': fixtures.init_feature_params()}, pools)
    finetune = results['finetune']
    self.assertEqual((finetune['learning_rate'], finetune['inner_steps']),
                     (0.01, 20))
    self.assertEqual(finetune['valid_accuracy'], 0.9)
    self.assertEqual(finetune['test_accuracy'], 0.3)
    self.assertCountEqual(calls[:4], [('valid', lr, steps, 6)
                                      for lr, steps in valid_table])
    self.assertEqual(calls[4:], [('test', 0.01, 20, 9)])
    self.assertLen(finetune['grid'], 4)

  def test_select_finetune_setting(self):
    self.assertEqual(
        finetune_lib.select_finetune_setting({
            (0.1, 5): 0.5,
            (0.2, 5): 0.7,
            (0.3, 5): 0.7
        }), (0.2, 5))
    with self.assertRaisesRegex(ValueError, 'empty'):
      finetune_lib.select_finetune_setting({})


class BadInputTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      ('pretrain_steps', 0), ('pretrain_seconds', -1.0), ('batch_size', 0),
      ('learning_rate', 0.0), ('finetune_learning_rates', ()),
      ('finetune_learning_rates', (0.1, -1.0)), ('finetune_steps', ()),
      ('finetune_steps', (0, )), ('finetune_steps', (2.5, )),
      ('selection_episodes', 0), ('seed', -1), ('batch_size', True))
  def test_baseline_config_names_the_field(self, field, value):
    config = baselines.BaselineConfig(**{field: value})
    with self.assertRaisesRegex(ValueError, f'^{field}='):
      config.validate()

  def test_pretrained_params_must_fit_the_learner(self):
    pools = fixtures.separable_pools()
    config = fixtures.config()
    baseline_config = baselines.BaselineConfig(selection_episodes=2)
    with self.assertRaisesRegex(ValueError, "'params'"):
      baselines.evaluate_baselines(config, baseline_config, {}, pools)
    with self.assertRaisesRegex(ValueError, 'conv/BN parameters'):
      baselines.evaluate_baselines(config, baseline_config,
                                   {'params': np.zeros(17)}, pools)
    nan = fixtures.init_feature_params().numpy()
    nan[0] = np.nan
    with self.assertRaisesRegex(ValueError, 'NaN'):
      baselines.evaluate_baselines(config, baseline_config, {'params': nan},
                                   pools)

  def test_pools_must_fit(self):
    config = fixtures.config()
    wrong_size = fixtures.separable_pool(6, 10, seed=0, size=_SIZE * 2)
    pools = fixtures.separable_pools()._replace(meta_train=wrong_size)
    out_dir = fixtures.new_dir(self)
    with self.assertRaisesRegex(ValueError, r'meta_train\.images has shape'):
      baselines.pretrain(config, baselines.BaselineConfig(), out_dir, pools)
    one_class = fixtures.separable_pools()._replace(
        meta_train=fixtures.separable_pool(1, 10, seed=0))
    with self.assertRaisesRegex(ValueError, 'at least 2'):
      baselines.pretrain(config, baselines.BaselineConfig(), out_dir, one_class)
    with self.assertRaisesRegex(ValueError, "pools has no 'meta_train'"):
      baselines.pretrain(config, baselines.BaselineConfig(), out_dir, object())
    few_classes = fixtures.separable_pools()._replace(
        meta_valid=fixtures.separable_pool(2, 10, seed=0))
    with self.assertRaisesRegex(ValueError, 'meta_valid: num_ways=3 exceeds'):
      baselines.evaluate_baselines(config, baselines.BaselineConfig(),
                                   {'params': fixtures.init_feature_params()},
                                   few_classes)

  def test_out_dir_is_required(self):
    with self.assertRaisesRegex(ValueError, 'out_dir'):
      baselines.pretrain(fixtures.config(), baselines.BaselineConfig(), '',
                         fixtures.separable_pools())


if __name__ == '__main__':
  tf.test.main()
