"""Nearest neighbour: cosine 1-NN and the learner's features, against NumPy."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf.baselines import nearest_neighbour
from meta_lstm_tf.data import episodes as episodes_lib
from tests.fixtures import baselines as fixtures

_SIZE = fixtures.SIZE
_LEARNER = fixtures.LEARNER


class LearnerFeaturesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.product(with_stats=(False, True),
                         twice_differentiable=(False, True))
  def test_head_of_features_is_apply(self, with_stats, twice_differentiable):
    params = learner.init_params(_LEARNER, seed=1)
    images = tf.random.stateless_uniform([6, _SIZE, _SIZE, 1], seed=[1, 2])
    stats = None
    if with_stats:
      _, stats = learner.apply(
          params, tf.random.stateless_uniform([5, _SIZE, _SIZE, 1],
                                              seed=[3, 4]), _LEARNER)
    logits, batch = learner.apply(params, images, _LEARNER, stats,
                                  twice_differentiable)
    features, feature_batch = learner.features(params, images, _LEARNER, stats,
                                               twice_differentiable)
    # 8 -> 4 -> 2 after two poolings: d = 4 * 2 * 2.
    self.assertEqual(features.shape, (6, 16))
    self.assertAllClose(learner.head(params, features), logits)
    self.assertAllClose(feature_batch, batch)

  def test_feature_spec_is_a_prefix_of_the_flat_vector(self):
    params = learner.init_params(_LEARNER, seed=2)
    spec = learner.feature_spec(_LEARNER)
    self.assertNotIn('linear/kernel', spec)
    flat = learner.flatten(params, learner.param_spec(_LEARNER))
    features = learner.flatten(params, spec)
    self.assertAllEqual(flat[:features.shape[0]], features)
    # Independent of N.
    five_way = config_lib.LearnerConfig(num_ways=5, num_filters=4, num_blocks=2,
                                        image_size=_SIZE)
    self.assertEqual(learner.feature_spec(five_way), spec)


class NearestNeighbourTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(('eager', False), ('tf_function', True))
  def test_matches_numpy_reference(self, compiled):
    rng = np.random.default_rng(0)
    support = rng.normal(size=(10, 7)).astype(np.float32)
    labels = rng.integers(0, 5, size=10).astype(np.int32)
    # Scaled copies of support rows must find their own row (cosine ignores
    # scale), plus random queries.
    query = np.concatenate(
        [3.0 * support[[4, 0, 9]],
         rng.normal(size=(20, 7)).astype(np.float32)])
    fn = nearest_neighbour.cosine_nearest_neighbour
    if compiled:
      fn = tf.function(fn)
    predictions = fn(tf.constant(support), tf.constant(labels),
                     tf.constant(query)).numpy()
    self.assertAllEqual(predictions,
                        fixtures.cosine_nn_reference(support, labels, query))
    self.assertAllEqual(predictions[:3], labels[[4, 0, 9]])

  def test_queries_are_normalised_with_support_statistics(self):
    # Non-transductive: a query's prediction does not depend on the other
    # queries, so the accuracy over the query set is the mean of the
    # one-query accuracies.
    pool = fixtures.separable_pool(5, 10, seed=3, noise=0.4)
    episode = episodes_lib.sample_episode(pool.images,
                                          config_lib.EpisodeConfig(5, 1, 3),
                                          tf.constant([1, 2]))
    feature_params = fixtures.init_feature_params(seed=4)
    whole = nearest_neighbour.nearest_neighbour_accuracy(
        feature_params, episode, _LEARNER)
    singles = [
        nearest_neighbour.nearest_neighbour_accuracy(
            feature_params,
            episode._replace(query_images=episode.query_images[i:i + 1],
                             query_labels=episode.query_labels[i:i + 1]),
            _LEARNER) for i in range(15)
    ]
    self.assertAllClose(whole, np.mean(singles))

  def test_accuracy_from_learner_features(self):
    pool = fixtures.separable_pool(5, 10, seed=5, noise=0.4)
    episode = episodes_lib.sample_episode(pool.images,
                                          config_lib.EpisodeConfig(5, 2, 3),
                                          tf.constant([3, 4]))
    feature_params = fixtures.init_feature_params(seed=6)
    nest = learner.unflatten(feature_params, learner.feature_spec(_LEARNER))
    support, stats = learner.features(nest, episode.support_images, _LEARNER)
    query, _ = learner.features(nest, episode.query_images, _LEARNER,
                                bn_stats=stats)
    expected = np.mean(
        fixtures.cosine_nn_reference(
            support.numpy(), episode.support_labels.numpy(), query.numpy()) ==
        episode.query_labels.numpy())
    self.assertAllClose(
        nearest_neighbour.nearest_neighbour_accuracy(feature_params, episode,
                                                     _LEARNER), expected,
        atol=1e-6)


if __name__ == '__main__':
  tf.test.main()
