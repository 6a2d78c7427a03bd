"""The non-meta baselines of Ravi & Larochelle's Table 1.

Shapes: C meta-train classes, D drawings per class, B pretraining batch size;
N ways, K shots, Q queries per class, S = N * K support and Q_total = N * Q
query examples; E episodes per stacked evaluation batch; P_f the learner's
feature coordinates (its conv and batch-norm parameters, `learner.
feature_spec`), d = F * R * R the feature dimension.

Both baselines start from one pretrained network (`pretrain_lib.pretrain`,
re-exported here): the learner trained with Adam as an ordinary C-way
classifier over every meta-train class.

  nearest neighbour  1-NN by cosine similarity between the penultimate
                     features (`learner.features`) of each query and of the
                     support examples.
  fine-tune          the pretrained conv/BN parameters with a fresh,
                     zero-initialised N-way linear head, trained on the
                     support set with plain SGD (`sgd_rule.SGDRule` run by
                     the project's one inner loop,
                     `inner_loop.adapt_and_classify`), then applied to the
                     queries. Its learning rate and number of steps are
                     chosen by mean accuracy on meta-valid episodes, never
                     on meta-test.

Batch norm is non-transductive for both: the support pass normalises with the
support batch's statistics and the query pass with those same statistics (for
fine-tuning, the inner loop's running support statistics,
`InnerLoopConfig.bn_momentum` of the experiment).

Episodes are those of meta-training's evaluation (`evaluation.VALID_SEED`,
`evaluation.TEST_SEED`): episode i depends only on (seed, i), so the baselines
and the meta-learner are scored on identical episodes.

The pretraining's files are described in `pretrain_lib`.
"""

import time
from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf import learner
from meta_lstm_tf import pretrain_lib
from meta_lstm_tf import train_steps
from meta_lstm_tf import types
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import splits
from meta_lstm_tf.rules import sgd as sgd_rule

# The pretraining moved to `pretrain_lib` (the meta-learners use it too);
# these names stay importable from here.
BaselineConfig = pretrain_lib.BaselineConfig
pretrain = pretrain_lib.pretrain
make_pretrain_dataset = pretrain_lib.make_pretrain_dataset
make_pretrain_step = pretrain_lib.make_pretrain_step
feature_params_of = pretrain_lib.feature_params_of
SETTINGS_FILE = pretrain_lib.SETTINGS_FILE
PARAMS_FILE = pretrain_lib.PARAMS_FILE
RESULT_FILE = pretrain_lib.RESULT_FILE
_check_pool = pretrain_lib.check_pool
_check_pools = pretrain_lib.check_pools

# ------------------------------------------------------- nearest neighbour


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


def make_finetune_rule(feature_params: tf.Tensor,
                       learner_config: config_lib.LearnerConfig,
                       learning_rate: float) -> sgd_rule.SGDRule:
  """An `SGDRule` whose theta_0 is [pretrained conv/BN, zero N-way head]."""
  rule = sgd_rule.SGDRule(learner_config, learning_rate=learning_rate,
                          name='finetune_sgd')
  head_size = learner.num_params(learner_config) - int(feature_params.shape[0])
  rule.initial_params.assign(tf.concat(
      [tf.cast(feature_params, rule.initial_params.dtype),
       tf.zeros([head_size], rule.initial_params.dtype)], axis=0))
  return rule


def finetune_inner_config(config: config_lib.ExperimentConfig,
                          inner_steps: int) -> config_lib.InnerLoopConfig:
  """First-order, non-transductive inner loop of `inner_steps` SGD steps."""
  return config_lib.InnerLoopConfig(
      inner_steps=inner_steps, second_order=False, transductive=False,
      bn_momentum=config.inner_loop.bn_momentum).validate()


def evaluate_finetune(feature_params: tf.Tensor,
                      config: config_lib.ExperimentConfig,
                      learning_rate: float, inner_steps: int,
                      batches: Sequence[types.Episode]) -> dict:
  """Fine-tunes on each episode's support set and scores its queries.

  Args:
    feature_params: [P_f] pretrained conv/BN parameters.
    config: the experiment (learner shape, batch-norm momentum).
    learning_rate: SGD learning rate.
    inner_steps: SGD steps on the support set.
    batches: stacked episodes (`evaluation.batch_episodes`).

  Returns:
    `evaluation.evaluate`'s dict: `accuracy`, `ci95`, `loss`, `episodes`.
  """
  rule = make_finetune_rule(feature_params, config.learner, learning_rate)
  eval_step = train_steps.make_eval_step(
      rule, finetune_inner_config(config, inner_steps))
  return evaluation.evaluate(eval_step, batches)


def select_finetune_setting(valid_accuracies: Dict[Tuple[float, int], float]
                            ) -> Tuple[float, int]:
  """The (learning rate, steps) of highest meta-valid accuracy.

  Ties go to the first setting in the dict's order.
  """
  if not valid_accuracies:
    raise ValueError('valid_accuracies is empty: no fine-tuning setting to '
                     'choose from')
  return max(valid_accuracies, key=valid_accuracies.get)


# ------------------------------------------------------------- both, timed


def _eval_batches(pool, config, num_episodes, seed, name):
  return evaluation.batch_episodes(episodes_lib.make_eval_dataset(
      pool, config.episode, num_episodes, seed, name=name))


def evaluate_baselines(config: config_lib.ExperimentConfig,
                       baseline_config: BaselineConfig, pretrained: dict,
                       pools: Optional[splits.ClassPools] = None) -> dict:
  """Nearest neighbour and fine-tune on the experiment's episodes.

  Fine-tuning's (learning rate, steps) is chosen on the first
  `baseline_config.selection_episodes` meta-valid episodes
  (`evaluation.VALID_SEED`); only the chosen setting runs on the
  `config.train.test_episodes` meta-test episodes (`evaluation.TEST_SEED`).

  Args:
    config: the experiment (episode shape, learner, test episodes).
    baseline_config: the fine-tuning grid and selection episodes.
    pretrained: `pretrain`'s result.
    pools: `splits.make_class_pools(config.data)`, if already loaded.

  Returns:
    {'finetune': {...}, 'nearest_neighbour': {...}}, each with
    `test_accuracy`, `test_ci95`, `test_episodes`, `test_accuracies` (per
    meta-test episode, in episode order), `valid_accuracy`,
    `valid_episodes`, `pretrain_steps`, `pretrain_seconds`, `eval_seconds`
    (the meta-test evaluation), `selection_seconds` (the meta-valid
    evaluation: for fine-tune the whole grid), `num_ways`, `num_shots`;
    fine-tune also `learning_rate` and `inner_steps` (the chosen setting)
    and `grid` (every setting's meta-valid accuracy).

  Raises:
    ValueError: invalid configs, a `pretrained` that does not fit the
      learner, or pools that cannot supply the episodes.
  """
  config.validate()
  baseline_config.validate()
  feature_params = feature_params_of(pretrained, config.learner)
  if pools is None:
    pools = splits.make_episode_pools(config.data, config.episode)
  _check_pools(pools)
  for name in ('meta_valid', 'meta_test'):
    _check_pool(getattr(pools, name), config.learner, name)
  valid = _eval_batches(pools.meta_valid, config,
                        baseline_config.selection_episodes,
                        evaluation.VALID_SEED, 'meta_valid')
  test = _eval_batches(pools.meta_test, config, config.train.test_episodes,
                       evaluation.TEST_SEED, 'meta_test')
  common = {
      'pretrain_steps': int(pretrained.get('steps', 0)),
      'pretrain_seconds': float(pretrained.get('seconds', 0.0)),
      'valid_episodes': baseline_config.selection_episodes,
      'num_ways': config.episode.num_ways,
      'num_shots': config.episode.num_shots,
  }

  start = time.perf_counter()
  nn_valid = evaluate_nearest_neighbour(feature_params, config.learner, valid)
  middle = time.perf_counter()
  nn_test = evaluate_nearest_neighbour(feature_params, config.learner, test)
  nearest_neighbour = dict(
      common, test_accuracy=nn_test['accuracy'], test_ci95=nn_test['ci95'],
      test_episodes=nn_test['episodes'],
      test_accuracies=nn_test['accuracies'], valid_accuracy=nn_valid['accuracy'],
      selection_seconds=middle - start,
      eval_seconds=time.perf_counter() - middle)

  start = time.perf_counter()
  grid = {}
  for learning_rate in baseline_config.finetune_learning_rates:
    for inner_steps in baseline_config.finetune_steps:
      grid[(float(learning_rate), int(inner_steps))] = evaluate_finetune(
          feature_params, config, learning_rate, inner_steps,
          valid)['accuracy']
  learning_rate, inner_steps = select_finetune_setting(grid)
  middle = time.perf_counter()
  ft_test = evaluate_finetune(feature_params, config, learning_rate,
                              inner_steps, test)
  finetune = dict(
      common, test_accuracy=ft_test['accuracy'], test_ci95=ft_test['ci95'],
      test_episodes=ft_test['episodes'],
      test_accuracies=ft_test['accuracies'], valid_accuracy=grid[(learning_rate,
                                                              inner_steps)],
      learning_rate=learning_rate, inner_steps=inner_steps,
      grid=[{'learning_rate': lr, 'inner_steps': steps,
             'valid_accuracy': accuracy}
            for (lr, steps), accuracy in grid.items()],
      selection_seconds=middle - start,
      eval_seconds=time.perf_counter() - middle)
  return {'finetune': finetune, 'nearest_neighbour': nearest_neighbour}
