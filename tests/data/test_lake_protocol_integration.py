"""Lake et al.'s protocol on the real Omniglot copy: drawers and alphabets.

Skipped unless OMNIGLOT_DIR points at a local copy.
"""

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config
from meta_lstm_tf.data import episodes
from meta_lstm_tf.data import pools as pools_lib
from tests.fixtures import real_data



@real_data.requires_omniglot
class RealOmniglotLakeProtocolTest(tf.test.TestCase):

  def test_real_omniglot_drawers_and_alphabets(self):
    pools = pools_lib.make_class_pools(
        config.DataConfig(omniglot_dir=real_data.OMNIGLOT_DIR), drawers=True)
    test = pools.meta_test
    self.assertEqual(test.drawers.shape, (659, 20))
    # Every character: one drawing by each of the 20 drawers.
    self.assertAllEqual(np.sort(test.drawers, axis=1),
                        np.broadcast_to(np.arange(20), (659, 20)))
    self.assertLen(set(test.alphabets), 20)
    self.assertEqual(test.alphabets[0], test.class_names[0].split('/')[0])
    episode_config = config.EpisodeConfig(
        20, 1, 1, episode_classes='within_alphabet', distinct_drawers=True)
    episodes.validate_episode_config(test, episode_config)
    episodes.validate_episode_config(pools.meta_valid, episode_config,
                                     'meta_valid')
    episode = next(iter(episodes.make_eval_dataset(test, episode_config, 1,
                                                   seed=0)))
    self.assertEqual(episode.support_images.shape, [20, 28, 28, 1])


if __name__ == '__main__':
  tf.test.main()
