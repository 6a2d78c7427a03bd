"""The nearest-neighbour baseline: 1-NN in the pretrained learner's features.

Shapes: N ways, K shots, S = N * K support and Q_total query examples; P_f
the learner's feature coordinates (its conv and batch-norm parameters,
`learner.feature_spec`), d = F * R * R the feature dimension.

1-NN by cosine similarity between the penultimate features
(`conv_ops.features`) of each query and of the support examples. Batch norm
is non-transductive: the query pass normalises with the support batch's
statistics.
"""

from typing import Sequence

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf import types


def cosine_nearest_neighbour(support_features: tf.Tensor,
                             support_labels: tf.Tensor,
                             query_features: tf.Tensor) -> tf.Tensor:
  """1-NN by cosine similarity.

  Args:
    support_features: [S, d].
    support_labels: int [S].
    query_features: [Q_total, d].

  Returns:
    The label of each query's most similar support example, [Q_total]
    (ties: the first such support example; an all-zero feature has
    similarity 0 to everything).
  """
  support = tf.math.l2_normalize(support_features, axis=-1)
  query = tf.math.l2_normalize(query_features, axis=-1)
  similarity = tf.matmul(query, support, transpose_b=True)  # [Q_total, S]
  return tf.gather(support_labels, tf.argmax(similarity, axis=-1))


def nearest_neighbour_accuracy(feature_params: tf.Tensor,
                               episode: types.Episode,
                               learner_config: config_lib.LearnerConfig
                               ) -> tf.Tensor:
  """Query accuracy [] of 1-NN in the learner's features on one episode.

  Non-transductive: the query batch is normalised with the support batch's
  statistics.

  Args:
    feature_params: [P_f] flat conv/BN parameters.
    episode: one `types.Episode`.
    learner_config: the learner (its `num_ways` is not used).
  """
  nest = learner.unflatten(feature_params, learner.feature_spec(
      learner_config))
  support, support_stats = learner.features(
      nest, episode.support_images, learner_config,
      twice_differentiable=False)
  query, _ = learner.features(nest, episode.query_images, learner_config,
                              bn_stats=support_stats,
                              twice_differentiable=False)
  predictions = cosine_nearest_neighbour(support, episode.support_labels,
                                         query)
  labels = tf.cast(episode.query_labels, predictions.dtype)
  return tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))


def evaluate_nearest_neighbour(feature_params: tf.Tensor,
                               learner_config: config_lib.LearnerConfig,
                               batches: Sequence[types.Episode]) -> dict:
  """1-NN accuracy over stacked episode batches (`evaluation.batch_episodes`).

  Returns:
    dict with `accuracy`, `ci95` and `episodes`.
  """

  @tf.function
  def step(params, episodes):
    return tf.stack([
        nearest_neighbour_accuracy(
            params, tf.nest.map_structure(lambda x, b=b: x[b], episodes),
            learner_config)
        for b in range(episodes.support_images.shape[0])])

  accuracies = []
  for batch in batches:
    accuracies.extend(step(feature_params, batch).numpy().tolist())
  accuracy, ci95 = evaluation.mean_and_ci95(accuracies)
  return {'accuracy': accuracy, 'ci95': ci95, 'episodes': len(accuracies),
          'accuracies': accuracies}


# ---------------------------------------------------------------- fine-tune
