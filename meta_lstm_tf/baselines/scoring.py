"""The non-meta baselines of Ravi & Larochelle's Table 1.

Shapes: C meta-train classes, D drawings per class, B pretraining batch size;
N ways, K shots, Q queries per class, S = N * K support and Q_total = N * Q
query examples; E episodes per stacked evaluation batch; P_f the learner's
feature coordinates (its conv and batch-norm parameters, `learner.
feature_spec`), d = F * R * R the feature dimension.

Both baselines start from one pretrained network
(`baselines.pretraining.pretrain`): the learner trained with Adam as an
ordinary C-way classifier over every meta-train class.

  nearest neighbour  1-NN by cosine similarity between the penultimate
                     features (`conv_ops.features`) of each query and of the
                     support examples.
  fine-tune          the pretrained conv/BN parameters with a fresh,
                     zero-initialised N-way linear head, trained on the
                     support set with plain SGD (`sgd.SGDRule` run by
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

The pretraining's files are described in `baselines.pretraining`; the
methods live in `baselines.nearest_neighbour` and `baselines.finetune`.
"""

import time
from typing import Optional

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf.baselines import config as baseline_config_lib
from meta_lstm_tf.baselines import finetune as finetune_lib
from meta_lstm_tf.baselines import nearest_neighbour as nn_lib
from meta_lstm_tf.baselines import pretrain_data
from meta_lstm_tf.baselines import pretraining
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import episodes as episodes_lib
from meta_lstm_tf.data import pools as pools_lib


def _eval_batches(pool, config, num_episodes, seed, name):
  return evaluation.batch_episodes(episodes_lib.make_eval_dataset(
      pool, config.episode, num_episodes, seed, name=name))


def evaluate_baselines(config: config_lib.ExperimentConfig,
                       baseline_config: baseline_config_lib.BaselineConfig,
                       pretrained: dict,
                       pools: Optional[class_pools.ClassPools] = None) -> dict:
  """Nearest neighbour and fine-tune on the experiment's episodes.

  Fine-tuning's (learning rate, steps) is chosen on the first
  `baseline_config.selection_episodes` meta-valid episodes
  (`evaluation.VALID_SEED`); only the chosen setting runs on the
  `config.train.test_episodes` meta-test episodes (`evaluation.TEST_SEED`).

  Args:
    config: the experiment (episode shape, learner, test episodes).
    baseline_config: the fine-tuning grid and selection episodes.
    pretrained: `pretrain`'s result.
    pools: `pools_lib.make_class_pools(config.data)`, if already loaded.

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
  feature_params = pretraining.feature_params_of(pretrained, config.learner)
  if pools is None:
    pools = pools_lib.make_episode_pools(config.data, config.episode)
  pretrain_data.check_pools(pools)
  for name in ('meta_valid', 'meta_test'):
    pretrain_data.check_pool(getattr(pools, name), config.learner, name)
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

  nearest_neighbour = _nearest_neighbour(feature_params, config, valid,
                                         test, common)
  finetune = _finetune(feature_params, config, baseline_config, valid, test,
                       common)
  return {'finetune': finetune, 'nearest_neighbour': nearest_neighbour}


def _nearest_neighbour(feature_params, config, valid, test, common) -> dict:
  """The nearest-neighbour baseline's record (`evaluate_baselines`)."""
  start = time.perf_counter()
  nn_valid = nn_lib.evaluate_nearest_neighbour(feature_params,
                                               config.learner, valid)
  middle = time.perf_counter()
  nn_test = nn_lib.evaluate_nearest_neighbour(feature_params, config.learner,
                                              test)
  nearest_neighbour = dict(
      common, test_accuracy=nn_test['accuracy'], test_ci95=nn_test['ci95'],
      test_episodes=nn_test['episodes'],
      test_accuracies=nn_test['accuracies'],
      valid_accuracy=nn_valid['accuracy'],
      selection_seconds=middle - start,
      eval_seconds=time.perf_counter() - middle)

  return nearest_neighbour


def _finetune(feature_params, config, baseline_config, valid, test,
              common) -> dict:
  """The fine-tune baseline's record, its setting chosen on `valid`."""
  start = time.perf_counter()
  grid = {}
  for learning_rate in baseline_config.finetune_learning_rates:
    for inner_steps in baseline_config.finetune_steps:
      grid[(float(learning_rate), int(inner_steps))] = (
          finetune_lib.evaluate_finetune(feature_params, config,
                                         learning_rate, inner_steps,
                                         valid)['accuracy'])
  learning_rate, inner_steps = finetune_lib.select_finetune_setting(grid)
  middle = time.perf_counter()
  ft_test = finetune_lib.evaluate_finetune(feature_params, config,
                                           learning_rate, inner_steps, test)
  finetune = dict(
      common, test_accuracy=ft_test['accuracy'], test_ci95=ft_test['ci95'],
      test_episodes=ft_test['episodes'],
      test_accuracies=ft_test['accuracies'],
      valid_accuracy=grid[(learning_rate, inner_steps)],
      learning_rate=learning_rate, inner_steps=inner_steps,
      grid=[{'learning_rate': lr, 'inner_steps': steps,
             'valid_accuracy': accuracy}
            for (lr, steps), accuracy in grid.items()],
      selection_seconds=middle - start,
      eval_seconds=time.perf_counter() - middle)
  return finetune

