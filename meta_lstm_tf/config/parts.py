"""What a run learns from and with: the data, the episodes, the learner,
the update rule and the inner loop."""

import dataclasses
from typing import Optional, Tuple

from meta_lstm_tf.config import settings



@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which images, from where, and how classes are split.

  Attributes:
    dataset: one of `settings.DATASETS`: `omniglot` (TFDS or `omniglot_dir`),
      `mini_imagenet` (Ravi & Larochelle's split, a local copy in
      `data_root`, `data.photos.mini_imagenet`) or `image_folder` (any
      `data_root/{train,val,test}/CLASS/*.png|jpg`,
      `data.photos.image_folder`).
    data_root: the local copy of `mini_imagenet` / `image_folder`.
    channels: image channels the learner sees: 1 for Omniglot; 3 (RGB) or
      1 (gray) for the others (images are converted, never rejected).
    omniglot_dir: local copy of Omniglot (archives and/or extracted folders);
      None means TFDS downloads it.
    data_dir: TFDS data directory (None: TFDS default).
    split: class split protocol, one of `settings.SPLITS`.
    split_dir: directory with `train.txt`, `val.txt`, `test.txt` (vinyals).
    minimal_subset: `small1` or `small2` for the `minimal` split.
    rotations: add 90/180/270 degree rotations of every class as new classes.
    image_size: images are resized to image_size x image_size.
  """
  dataset: str = settings.setting(
      'omniglot', 'Data set: omniglot (TFDS, or --omniglot_dir), '
      'mini_imagenet (Ravi & Larochelle\'s split, a local copy in '
      '--data_root) or image_folder (--data_root/{train,val,test}/CLASS/'
      '*.png|jpg).', choices=settings.DATASETS, record=True)
  data_root: Optional[str] = settings.setting(
      None, 'Local copy of --dataset=mini_imagenet (images/ and train.csv, '
      'val.csv, test.csv; or train/CLASS/*.jpg, val/, test/) or '
      'image_folder. Never downloaded.', role='path')
  channels: int = settings.setting(
      1, 'Image channels: 1 (gray) or 3 (RGB); default the data set\'s '
      '(omniglot 1, mini_imagenet and image_folder 3).', flag_default=None)
  omniglot_dir: Optional[str] = settings.setting(
      None, 'Local copy of Omniglot (archives and/or extracted folders); '
      'default $OMNIGLOT_DIR, else TFDS downloads it.', role='path')
  data_dir: Optional[str] = settings.setting(None, 'TFDS data directory.',
                                    role='path')
  split: str = settings.setting('lake', 'Class split protocol.', choices=settings.SPLITS,
                       record=True)
  split_dir: Optional[str] = settings.setting(
      None, 'Directory with train.txt/val.txt/test.txt (split=vinyals); '
      'default: splits/vinyals/ of the local Omniglot copy (--omniglot_dir '
      'or $OMNIGLOT_DIR), where there is one.')
  minimal_subset: str = settings.setting('small1',
                                'Background subset for split=minimal.',
                                choices=settings.MINIMAL_SUBSETS)
  rotations: bool = settings.setting(
      False, 'Add 90/180/270 degree rotations of meta-train classes as '
      'classes.')
  image_size: int = settings.setting(
      28, 'Image side in pixels; default the data set\'s (omniglot 28, '
      'mini_imagenet and image_folder 84).', flag_default=None)

  @property
  def inverted(self) -> bool:
    """Whether images are inverted (Omniglot: dark strokes on white become
    strokes = 1 on 0); natural images are kept as they are."""
    return self.dataset == 'omniglot'

  def validate(self) -> 'DataConfig':
    settings.check(self.dataset in settings.DATASETS, 'dataset', self.dataset,
           f'must be one of {settings.DATASETS}')
    settings.check(self.channels in (1, 3), 'channels', self.channels,
           'must be 1 or 3')
    if self.dataset == 'omniglot':
      settings.check(self.channels == 1, 'channels', self.channels,
             'must be 1 for dataset=omniglot (grayscale drawings)')
    else:
      settings.check(bool(self.data_root), 'data_root', self.data_root,
             f'is required when dataset={self.dataset} (no download)')
      settings.check(not self.rotations, 'rotations', self.rotations,
             'only applies to dataset=omniglot')
    settings.check(self.split in settings.SPLITS, 'split', self.split,
           f'must be one of {settings.SPLITS}')
    settings.check(self.minimal_subset in settings.MINIMAL_SUBSETS, 'minimal_subset',
           self.minimal_subset, f'must be one of {settings.MINIMAL_SUBSETS}')
    if self.split == 'vinyals':
      settings.check(bool(self.split_dir), 'split_dir', self.split_dir,
             'is required when split=vinyals')
    settings.positive_int('image_size', self.image_size)
    settings.check(self.image_size >= 4, 'image_size', self.image_size, 'must be >= 4')
    return self


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
  """Episode shape (N ways, K shots, Q queries per class) and protocol.

  Attributes:
    episode_classes: `any` (N classes from the whole pool) or
      `within_alphabet` (all N from one alphabet, drawn uniformly among the
      alphabets with at least N classes: Lake et al.'s one-shot runs; needs
      a pool that knows its alphabets, i.e. Omniglot), or `mixed` (each
      episode one or the other with probability 1/2).
    train_episode_classes: the meta-train episodes' classes when they
      differ from the evaluation episodes' (`same`: as `episode_classes`),
      e.g. training on `mixed` episodes for a `within_alphabet` test.
    distinct_drawers: K drawers and Q other drawers are drawn per episode;
      every class's support drawings are by the first, its queries by the
      others (Lake et al.: the support and the query drawings of a
      character are by different people). Needs a local Omniglot copy,
      whose file names say the drawer.
    augment: meta-train episodes only: every support and query image
      rotated, zoomed, shifted and sheared at random, each uniformly in
      the range below (`image_ops.random_affine`). Evaluation episodes
      are never augmented.
    augment_rotation: with `augment`, rotations in +-this many degrees.
    augment_zoom: with `augment`, zoom factors in 1 +- this.
    augment_shift: with `augment`, shifts per axis in +-this fraction of
      the side.
    augment_shear: with `augment`, shear factors per axis drawn in
      [-augment_shear, augment_shear] (0: none).
    Each range has its own draw: changing one leaves the others' as they
    were, so the defaults give the images they always gave.
  """
  num_ways: int = settings.setting(5, 'N classes per episode.', record=True)
  num_shots: int = settings.setting(1, 'K support examples per class.', record=True)
  num_queries: int = settings.setting(15, 'Q query examples per class.', record=True)
  episode_classes: str = settings.setting(
      'any', 'any: N classes from all of the pool; within_alphabet: all N '
      'from one Omniglot alphabet (Lake et al.\'s one-shot runs); mixed: '
      'each episode one or the other, with probability 1/2.',
      choices=settings.EPISODE_CLASSES, record=True)
  train_episode_classes: str = settings.setting(
      'same', 'The meta-train episodes\' classes (same: as '
      '--episode_classes; any, within_alphabet, mixed: as there). '
      'Validation and test episodes follow --episode_classes.',
      choices=settings.TRAIN_EPISODE_CLASSES, record=True)
  distinct_drawers: bool = settings.setting(
      False, 'Omniglot: support and query drawings of a class by different '
      'people (K support drawers, Q others, per episode; Lake et al.). '
      'Needs a local copy (--omniglot_dir).', record=True)
  augment: bool = settings.setting(
      False, 'Meta-train episodes only: rotate, zoom, shift (and shear) '
      'every image at random, within --augment_rotation, --augment_zoom, '
      '--augment_shift (--augment_shear). Evaluation is never augmented.',
      record=True)
  augment_rotation: float = settings.setting(
      10.0, 'With --augment, rotations drawn uniformly in +-this many '
      'degrees.', record=True)
  augment_zoom: float = settings.setting(
      0.1, 'With --augment, zoom factors drawn uniformly in 1 +- this.',
      record=True)
  augment_shift: float = settings.setting(
      0.1, 'With --augment, shifts per axis drawn uniformly in +-this '
      'fraction of the image side.', record=True)
  augment_shear: float = settings.setting(
      0.0, 'With --augment, also shear every image by factors drawn '
      'uniformly in [-augment_shear, augment_shear] per axis (Koch et al.: '
      '0.3); 0: no shear.', record=True)

  def validate(self) -> 'EpisodeConfig':
    settings.check(self.episode_classes in settings.EPISODE_CLASSES, 'episode_classes',
           self.episode_classes, f'must be one of {settings.EPISODE_CLASSES}')
    settings.check(self.train_episode_classes in settings.TRAIN_EPISODE_CLASSES,
                   'train_episode_classes', self.train_episode_classes,
                   f'must be one of {settings.TRAIN_EPISODE_CLASSES}')
    settings.positive_int('num_ways', self.num_ways)
    settings.check(self.num_ways >= 2, 'num_ways', self.num_ways, 'must be >= 2')
    settings.positive_int('num_shots', self.num_shots)
    settings.positive_int('num_queries', self.num_queries)
    defaults = EpisodeConfig(self.num_ways, self.num_shots, self.num_queries)
    for name, high in (('augment_rotation', 45), ('augment_zoom', 0.5),
                       ('augment_shift', 0.5), ('augment_shear', 1)):
      value = getattr(self, name)
      settings.check(0 <= value <= high, name, value, f'must be in [0, {high}]')
      settings.check(self.augment or value == getattr(defaults, name), name,
                     value, 'needs --augment')
    return self

  def affine_ranges(self) -> Tuple[float, float, float, float]:
    """(rotation degrees, zoom change, shift fraction, shear): the ranges of
    `augment`, in the order of `image_ops.AffineRanges`."""
    return (self.augment_rotation, self.augment_zoom, self.augment_shift,
            self.augment_shear)

  def for_training(self) -> 'EpisodeConfig':
    """The meta-train episodes' config: `train_episode_classes` resolved."""
    if self.train_episode_classes == 'same':
      return self
    return dataclasses.replace(self, episode_classes=self.train_episode_classes,
                               train_episode_classes='same')


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
