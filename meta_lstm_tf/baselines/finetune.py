"""The fine-tuning baseline: SGD on the support set from the pretrained learner.

Shapes: P_f the learner's feature coordinates (its conv and batch-norm
parameters, `learner.feature_spec`), P all its coordinates.

The pretrained conv/BN parameters with a fresh, zero-initialised N-way linear
head, trained on the support set with plain SGD (`sgd.SGDRule` run by
the project's one inner loop, `inner_loop.adapt_and_classify`), then applied
to the queries. Its learning rate and number of steps are chosen by mean
accuracy on meta-valid episodes, never on meta-test. Batch norm is
non-transductive: the query pass uses the inner loop's running support
statistics (`InnerLoopConfig.bn_momentum` of the experiment).
"""

from typing import Dict, Sequence, Tuple

import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import evaluation
from meta_lstm_tf.learners import conv_ops as learner
from meta_lstm_tf import types
from meta_lstm_tf.rules import sgd


def make_finetune_rule(feature_params: tf.Tensor,
                       learner_config: config_lib.LearnerConfig,
                       learning_rate: float) -> sgd.SGDRule:
  """An `SGDRule` whose theta_0 is [pretrained conv/BN, zero N-way head]."""
  rule = sgd.SGDRule(learner_config, learning_rate=learning_rate,
                          name='finetune_sgd')
  head_size = learner.num_params(learner_config) - int(feature_params.shape[0])
  rule.set_initial_params(tf.concat(
      [tf.cast(feature_params, tf.float32), tf.zeros([head_size], tf.float32)],
      axis=0))
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
  eval_step = evaluation.make_eval_step(
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
