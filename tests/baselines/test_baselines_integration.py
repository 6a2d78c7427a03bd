"""The baselines on the real Omniglot copy (OMNIGLOT_DIR)."""

import tensorflow as tf

from meta_lstm_tf import baselines
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf.baselines import nearest_neighbour
from meta_lstm_tf.baselines import pretraining
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import pools as pools_lib
from tests.fixtures import baselines as fixtures
from tests.fixtures import real_data


class RealOmniglotTest(tf.test.TestCase):
  """A short pretraining on the real archives (skipped without them)."""

  @real_data.requires_omniglot
  def test_pretrained_features_beat_random_ones(self):
    config = config_lib.ExperimentConfig(data=config_lib.DataConfig(
        omniglot_dir=real_data.OMNIGLOT_DIR))
    pools = pools_lib.make_class_pools(config.data)
    result = baselines.pretrain(config,
                                baselines.BaselineConfig(pretrain_steps=300),
                                fixtures.new_dir(self), pools)
    self.assertLess(result['final_loss'], result['initial_loss'] - 1.0)
    valid = evaluation.batch_episodes(
        episodes_lib.make_eval_dataset(pools.meta_valid, config.episode, 50,
                                       evaluation.VALID_SEED,
                                       name='meta_valid'))
    pretrained = nearest_neighbour.evaluate_nearest_neighbour(
        pretraining.feature_params_of(result, config.learner), config.learner,
        valid)['accuracy']
    random = nearest_neighbour.evaluate_nearest_neighbour(
        fixtures.init_feature_params(config.learner), config.learner,
        valid)['accuracy']
    # Measured: 0.74 after 300 steps, 0.43 at the initial parameters.
    self.assertGreater(pretrained, 0.6)
    self.assertGreater(pretrained, random + 0.15)


if __name__ == '__main__':
  tf.test.main()
