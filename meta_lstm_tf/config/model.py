"""What a run learns with: the learner, the update rule and the inner loop."""

import dataclasses
from typing import Optional

from meta_lstm_tf.config import settings


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """The conv learner: num_blocks x [conv3x3 -> BN -> ReLU -> maxpool2x2].

  Its shape (`num_ways`, `image_size`, `channels`) is given when the learner
  is used alone; inside an `ExperimentConfig` it is derived from the episode
  and data settings.
  """
  num_ways: int = settings.derived(5)
  num_filters: int = settings.setting(32, 'Filters per conv block of the learner.')
  num_blocks: int = settings.setting(4, 'Conv blocks of the learner.')
  image_size: int = settings.derived(28)
  channels: int = settings.derived(1)
  bn_epsilon: float = settings.setting(1e-3)

  def validate(self) -> 'LearnerConfig':
    settings.positive_int('num_ways', self.num_ways)
    settings.positive_int('num_filters', self.num_filters)
    settings.positive_int('num_blocks', self.num_blocks)
    settings.positive_int('image_size', self.image_size)
    settings.check(self.channels in (1, 3), 'channels', self.channels, 'must be 1 or 3')
    settings.check(self.image_size // (2 ** self.num_blocks) >= 1, 'num_blocks',
           self.num_blocks,
           f'too many 2x2 poolings for image_size={self.image_size}')
    settings.check(self.bn_epsilon > 0, 'bn_epsilon', self.bn_epsilon, 'must be > 0')
    return self


@dataclasses.dataclass(frozen=True)
class MetaLearnerConfig:
  """The update rule of the inner loop and its meta-parameters.

  Attributes:
    update_rule: one of `settings.UPDATE_RULES`: `meta_lstm` (Ravi & Larochelle),
      `sgd` (a fixed learning rate and learned initial parameters: MAML) or
      `meta_sgd` (a learned learning rate per coordinate and learned initial
      parameters: Meta-SGD, Li et al. 2017).
    inner_lr: the learning rate of `sgd`, the initial value of every
      learned rate of `meta_sgd`, and the meta-LSTM's initial input gate
      when `gate_init='inner_lr'`.
    gate_init: how the meta-LSTM's gate biases start. `inner_lr`: input
      bias settings.logit(inner_lr) and forget bias settings.logit(forget_gate_init), so the
      first inner steps are gradient descent with step size inner_lr and
      (almost) no shrinking; `paper`: the original code's U(-5, -4) input
      and U(4, 5) forget biases (`input_bias_range`, `forget_bias_range`),
      an initial step size of about 0.01 and a forget gate of about 0.99.
    forget_gate_init: the initial forget gate of `gate_init='inner_lr'`.
    gate_bias: `shared` (the paper: one forget and one input gate bias for
      every coordinate), `per_tensor` (one per learner tensor) or
      `per_coordinate`; see `meta_lstm.MetaLSTMRule`.
    gate_bias_scale: the gate biases are `gate_bias_scale` times their
      variables, so the meta-optimizer moves them that much faster (1: the
      paper's plain biases).
    hidden_size, preprocess_p, weight_init_scale, forget_bias_range,
      input_bias_range: the meta-LSTM (`meta_lstm.MetaLSTMRule`).
  """
  update_rule: str = settings.setting(
      'meta_lstm', 'Inner-loop update rule: meta_lstm (Ravi & Larochelle), '
      'sgd (MAML: fixed --inner_lr, learned init) or meta_sgd (learned '
      'per-coordinate rates and init).', choices=settings.UPDATE_RULES, record=True)
  inner_lr: float = settings.setting(
      0.1, 'Learning rate of update_rule=sgd; initial rates of meta_sgd; '
      'initial input gate of meta_lstm with --gate_init=inner_lr.',
      record=True)
  gate_init: str = settings.setting(
      'paper', 'Meta-LSTM gate biases at initialisation: inner_lr (input '
      'gate = --inner_lr, forget gate = --forget_gate_init) or paper (the '
      "original code's U(-5,-4) input and U(4,5) forget biases).",
      choices=settings.GATE_INITS, record=True)
  forget_gate_init: float = settings.setting(
      0.9999, 'Initial forget gate of the meta-LSTM with '
      '--gate_init=inner_lr.', record=True)
  gate_bias: str = settings.setting(
      'shared', 'Meta-LSTM gate biases: shared (the paper), per_tensor (one '
      'per learner tensor) or per_coordinate.', choices=settings.GATE_BIASES,
      record=True)
  gate_bias_scale: float = settings.setting(
      1.0, 'Meta-LSTM gate biases are this times their variables: the '
      'meta-optimizer moves them this much faster (1: plain biases).',
      record=True)
  hidden_size: int = settings.setting(20, 'Hidden units of the meta-LSTM first '
                             'layer.', record=True)
  preprocess_p: float = settings.setting(10.0)
  weight_init_scale: float = settings.setting(0.01)
  forget_bias_range: tuple = settings.setting((4.0, 5.0))
  input_bias_range: tuple = settings.setting((-5.0, -4.0))

  def gate_bias_ranges(self) -> tuple:
    """(forget_bias_range, input_bias_range) that `gate_init` means."""
    if self.gate_init == 'paper':
      return tuple(self.forget_bias_range), tuple(self.input_bias_range)
    forget, step = settings.logit(self.forget_gate_init), settings.logit(self.inner_lr)
    return (forget, forget), (step, step)

  def validate(self) -> 'MetaLearnerConfig':
    settings.check(self.update_rule in settings.UPDATE_RULES, 'update_rule', self.update_rule,
           f'must be one of {settings.UPDATE_RULES}')
    settings.check(self.inner_lr > 0, 'inner_lr', self.inner_lr, 'must be > 0')
    settings.check(self.gate_bias in settings.GATE_BIASES, 'gate_bias', self.gate_bias,
           f'must be one of {settings.GATE_BIASES}')
    settings.check(self.gate_bias_scale > 0, 'gate_bias_scale', self.gate_bias_scale,
           'must be > 0')
    settings.check(self.gate_init in settings.GATE_INITS, 'gate_init', self.gate_init,
           f'must be one of {settings.GATE_INITS}')
    settings.check(0 < self.forget_gate_init < 1, 'forget_gate_init',
           self.forget_gate_init, 'must be in (0, 1)')
    if self.gate_init == 'inner_lr':
      settings.check(self.update_rule != 'meta_lstm' or self.inner_lr < 1,
             'inner_lr', self.inner_lr,
             'must be < 1 with gate_init=inner_lr (the input gate is a '
             'sigmoid)')
    settings.positive_int('hidden_size', self.hidden_size)
    settings.check(self.preprocess_p > 0, 'preprocess_p', self.preprocess_p,
           'must be > 0')
    return self


@dataclasses.dataclass(frozen=True)
class InnerLoopConfig:
  """How `adapt` runs.

  Attributes:
    inner_steps: T, number of meta-LSTM updates on the support set (0,
      with `head_init='prototypes'`: theta_0's prototype classifier alone,
      Prototypical Networks' classifier; trained so, Prototypical
      Networks).
    second_order: differentiate through the learner's gradient (exact
      meta-gradient) instead of treating gradient and loss as constants.
    transductive: at evaluation, normalise the query batch with its own
      statistics instead of the episode's running (support) statistics.
    bn_momentum: how support passes fold into the episode's running batch
      norm statistics (`conv_ops.accumulate_bn_stats`): None averages all
      T + 1 passes, 1.0 (default) keeps the last pass, at theta_T (chosen on
      meta-valid: +1.2 points over the average for the mini run).
    train_query_stats: `batch` (the original code: meta-training normalises
      the query set with its own statistics) or `support` (with the running
      support statistics, as evaluation does).
    conv_dtype: the precision of the learner's convolutions and activations
      in first-order passes (`conv_ops.features`): `float32`, `bfloat16`
      (parameters, batch-norm statistics, losses, gradients and the
      meta-learner stay float32), or `auto` (bfloat16 where the CPU has
      AVX512-BF16 or AMX, see `runtime.resolve_conv_dtype`). Second-order
      passes are always float32 (or the parameters' dtype); exported
      SavedModels always run float32.
    head_init: `learned` (the paper: theta_0 is the meta-learned cell
      state, the linear head included) or `prototypes` (the head's part of
      theta_0 is set per episode from the support set's class prototypes
      in the learner's features, W_k = 2 c_k, b_k = -|c_k|^2, so that theta_0
      classifies as Prototypical Networks do, and the update rule adapts
      from there: Proto-MAML's initialisation, Triantafillou et al. 2020;
      the meta-gradient flows through the prototypes into the features).
      Learners with a linear head only (the built-in conv learner).
  """
  inner_steps: int = settings.setting(
      8, 'T meta-LSTM updates per episode (paper: 12 for 1-shot, 8 for 5).',
      record=True)
  second_order: bool = settings.setting(
      False, 'Exact second-order meta-gradients (default first order, as '
      'the paper).', record=True)
  transductive: bool = settings.setting(
      False, 'Evaluate with query-batch BN statistics (default: support '
      'statistics).')
  bn_momentum: Optional[float] = settings.setting(
      1.0, 'How support passes fold into the running BN statistics: 1 keeps '
      'the last pass (at theta_T), 0 averages all passes.')
  train_query_stats: str = settings.setting(
      'batch', 'BN statistics of the query pass in meta-training: batch '
      '(original code) or support (as at evaluation).',
      choices=settings.TRAIN_QUERY_STATS)
  # results.json records it as resolved on the machine (`auto` depends on
  # the CPU): `training/train_lib`.
  conv_dtype: str = settings.setting(
      'float32', "Precision of the learner's convolutions in first-order "
      'passes: float32, bfloat16, or auto (bfloat16 on CPUs with '
      'AVX512-BF16 or AMX). Exports always run float32.',
      choices=settings.CONV_DTYPES, record=True)
  head_init: str = settings.setting(
      'learned', "theta_0's linear head: learned (meta-learned, the paper) or "
      "prototypes (set per episode from the support set's class "
      'prototypes, as Proto-MAML).', choices=settings.HEAD_INITS, record=True)

  def validate(self) -> 'InnerLoopConfig':
    settings.check(isinstance(self.inner_steps, int) and (
        self.inner_steps >= 1 or (self.inner_steps == 0 and
                                  self.head_init == 'prototypes')),
                   'inner_steps', self.inner_steps,
                   "must be >= 1 (0 only with head_init='prototypes': the "
                   'prototype classifier alone)')
    if self.bn_momentum is not None:
      settings.check(0.0 < self.bn_momentum <= 1.0, 'bn_momentum', self.bn_momentum,
             'must be in (0, 1] (or unset for the mean over passes)')
    settings.check(self.train_query_stats in settings.TRAIN_QUERY_STATS,
           'train_query_stats', self.train_query_stats,
           "must be 'batch' or 'support'")
    settings.check(self.conv_dtype in settings.CONV_DTYPES, 'conv_dtype', self.conv_dtype,
           f'must be one of {settings.CONV_DTYPES}')
    settings.check(self.head_init in settings.HEAD_INITS, 'head_init',
                   self.head_init, f'must be one of {settings.HEAD_INITS}')
    return self
