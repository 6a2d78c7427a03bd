"""Frozen, validated configuration objects.

Library code receives these; only `cli.py` knows about flags. Every config has a
`validate()` that raises `ValueError` naming the offending field and value.
"""

import dataclasses
import math
from typing import Optional

SPLITS = ('lake', 'minimal', 'vinyals')
MINIMAL_SUBSETS = ('small1', 'small2')
UPDATE_RULES = ('meta_lstm', 'sgd', 'meta_sgd')
GATE_INITS = ('inner_lr', 'paper')
GATE_BIASES = ('shared', 'per_tensor', 'per_coordinate')
# InnerLoopConfig.conv_dtype; `auto` is resolved by
# `runtime.resolve_conv_dtype`. A SavedModel's precision is fixed when it is
# written, so exports take only the first two.
CONV_DTYPES = ('float32', 'bfloat16', 'auto')
EXPORT_CONV_DTYPES = CONV_DTYPES[:2]
INIT_FROM = ('scratch', 'pretrained')
STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')
LR_SCHEDULES = ('constant', 'cosine')
DATASETS = ('omniglot', 'mini_imagenet', 'image_folder')
# Per data set: (image_size, channels) when the flags leave them unset.
# Omniglot: the 28 x 28 grayscale of Vinyals et al. and the paper;
# mini-ImageNet: the paper's 84 x 84 RGB; image folders: as mini-ImageNet.
DATASET_DEFAULTS = {'omniglot': (28, 1), 'mini_imagenet': (84, 3),
                    'image_folder': (84, 3)}
EPISODE_CLASSES = ('any', 'within_alphabet')


def _check(condition: bool, field: str, value, requirement: str) -> None:
  if not condition:
    raise ValueError(f'{field}={value!r}: {requirement}')


def _logit(p: float) -> float:
  return math.log(p) - math.log1p(-p)


def _positive_int(field: str, value) -> None:
  _check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
         field, value, 'must be a positive integer')


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which images, from where, and how classes are split.

  Attributes:
    dataset: one of `DATASETS`: `omniglot` (TFDS or `omniglot_dir`),
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
    split: class split protocol, one of `SPLITS`.
    split_dir: directory with `train.txt`, `val.txt`, `test.txt` (vinyals).
    minimal_subset: `small1` or `small2` for the `minimal` split.
    rotations: add 90/180/270 degree rotations of every class as new classes.
    image_size: images are resized to image_size x image_size.
  """
  dataset: str = 'omniglot'
  data_root: Optional[str] = None
  channels: int = 1
  omniglot_dir: Optional[str] = None
  data_dir: Optional[str] = None
  split: str = 'lake'
  split_dir: Optional[str] = None
  minimal_subset: str = 'small1'
  rotations: bool = False
  image_size: int = 28

  @property
  def inverted(self) -> bool:
    """Whether images are inverted (Omniglot: dark strokes on white become
    strokes = 1 on 0); natural images are kept as they are."""
    return self.dataset == 'omniglot'

  def validate(self) -> 'DataConfig':
    _check(self.dataset in DATASETS, 'dataset', self.dataset,
           f'must be one of {DATASETS}')
    _check(self.channels in (1, 3), 'channels', self.channels,
           'must be 1 or 3')
    if self.dataset == 'omniglot':
      _check(self.channels == 1, 'channels', self.channels,
             'must be 1 for dataset=omniglot (grayscale drawings)')
    else:
      _check(bool(self.data_root), 'data_root', self.data_root,
             f'is required when dataset={self.dataset} (no download)')
      _check(not self.rotations, 'rotations', self.rotations,
             'only applies to dataset=omniglot')
    _check(self.split in SPLITS, 'split', self.split,
           f'must be one of {SPLITS}')
    _check(self.minimal_subset in MINIMAL_SUBSETS, 'minimal_subset',
           self.minimal_subset, f'must be one of {MINIMAL_SUBSETS}')
    if self.split == 'vinyals':
      _check(bool(self.split_dir), 'split_dir', self.split_dir,
             'is required when split=vinyals')
    _positive_int('image_size', self.image_size)
    _check(self.image_size >= 4, 'image_size', self.image_size, 'must be >= 4')
    return self


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
  """Episode shape (N ways, K shots, Q queries per class) and protocol.

  Attributes:
    episode_classes: `any` (N classes from the whole pool) or
      `within_alphabet` (all N from one alphabet, drawn uniformly among the
      alphabets with at least N classes: Lake et al.'s one-shot runs; needs
      a pool that knows its alphabets, i.e. Omniglot).
    distinct_drawers: K drawers and Q other drawers are drawn per episode;
      every class's support drawings are by the first, its queries by the
      others (Lake et al.: the support and the query drawings of a
      character are by different people). Needs a local Omniglot copy,
      whose file names say the drawer.
    augment: meta-train episodes only: every support and query image
      rotated (up to 10 degrees), zoomed (0.9-1.1x) and shifted (up to a
      tenth of its side) at random (`image_ops.random_affine`). Evaluation
      episodes are never augmented.
  """
  num_ways: int = 5
  num_shots: int = 1
  num_queries: int = 15
  episode_classes: str = 'any'
  distinct_drawers: bool = False
  augment: bool = False

  def validate(self) -> 'EpisodeConfig':
    _check(self.episode_classes in EPISODE_CLASSES, 'episode_classes',
           self.episode_classes, f'must be one of {EPISODE_CLASSES}')
    _positive_int('num_ways', self.num_ways)
    _check(self.num_ways >= 2, 'num_ways', self.num_ways, 'must be >= 2')
    _positive_int('num_shots', self.num_shots)
    _positive_int('num_queries', self.num_queries)
    return self


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """The conv learner: num_blocks x [conv3x3 -> BN -> ReLU -> maxpool2x2]."""
  num_ways: int = 5
  num_filters: int = 32
  num_blocks: int = 4
  image_size: int = 28
  channels: int = 1
  bn_epsilon: float = 1e-3

  def validate(self) -> 'LearnerConfig':
    _positive_int('num_ways', self.num_ways)
    _positive_int('num_filters', self.num_filters)
    _positive_int('num_blocks', self.num_blocks)
    _positive_int('image_size', self.image_size)
    _check(self.channels in (1, 3), 'channels', self.channels, 'must be 1 or 3')
    _check(self.image_size // (2 ** self.num_blocks) >= 1, 'num_blocks',
           self.num_blocks,
           f'too many 2x2 poolings for image_size={self.image_size}')
    _check(self.bn_epsilon > 0, 'bn_epsilon', self.bn_epsilon, 'must be > 0')
    return self


@dataclasses.dataclass(frozen=True)
class MetaLearnerConfig:
  """The update rule of the inner loop and its meta-parameters.

  Attributes:
    update_rule: one of `UPDATE_RULES`: `meta_lstm` (Ravi & Larochelle),
      `sgd` (a fixed learning rate and learned initial parameters: MAML) or
      `meta_sgd` (a learned learning rate per coordinate and learned initial
      parameters: Meta-SGD, Li et al. 2017).
    inner_lr: the learning rate of `sgd`, the initial value of every
      learned rate of `meta_sgd`, and the meta-LSTM's initial input gate
      when `gate_init='inner_lr'`.
    gate_init: how the meta-LSTM's gate biases start. `inner_lr`: input
      bias logit(inner_lr) and forget bias logit(forget_gate_init), so the
      first inner steps are gradient descent with step size inner_lr and
      (almost) no shrinking; `paper`: the original code's U(-5, -4) input
      and U(4, 5) forget biases (`input_bias_range`, `forget_bias_range`),
      an initial step size of about 0.01 and a forget gate of about 0.99.
    forget_gate_init: the initial forget gate of `gate_init='inner_lr'`.
    gate_bias: `shared` (the paper: one forget and one input gate bias for
      every coordinate), `per_tensor` (one per learner tensor) or
      `per_coordinate`; see `meta_lstm_layer.MetaLSTMLayer`.
    gate_bias_scale: the gate biases are `gate_bias_scale` times their
      variables, so the meta-optimizer moves them that much faster (1: the
      paper's plain biases).
    hidden_size, preprocess_p, weight_init_scale, forget_bias_range,
      input_bias_range: the meta-LSTM (`meta_lstm_layer.MetaLSTMLayer`).
  """
  update_rule: str = 'meta_lstm'
  inner_lr: float = 0.1
  gate_init: str = 'paper'
  forget_gate_init: float = 0.9999
  gate_bias: str = 'shared'
  gate_bias_scale: float = 1.0
  hidden_size: int = 20
  preprocess_p: float = 10.0
  weight_init_scale: float = 0.01
  forget_bias_range: tuple = (4.0, 5.0)
  input_bias_range: tuple = (-5.0, -4.0)

  def gate_bias_ranges(self) -> tuple:
    """(forget_bias_range, input_bias_range) that `gate_init` means."""
    if self.gate_init == 'paper':
      return tuple(self.forget_bias_range), tuple(self.input_bias_range)
    forget, step = _logit(self.forget_gate_init), _logit(self.inner_lr)
    return (forget, forget), (step, step)

  def validate(self) -> 'MetaLearnerConfig':
    _check(self.update_rule in UPDATE_RULES, 'update_rule', self.update_rule,
           f'must be one of {UPDATE_RULES}')
    _check(self.inner_lr > 0, 'inner_lr', self.inner_lr, 'must be > 0')
    _check(self.gate_bias in GATE_BIASES, 'gate_bias', self.gate_bias,
           f'must be one of {GATE_BIASES}')
    _check(self.gate_bias_scale > 0, 'gate_bias_scale', self.gate_bias_scale,
           'must be > 0')
    _check(self.gate_init in GATE_INITS, 'gate_init', self.gate_init,
           f'must be one of {GATE_INITS}')
    _check(0 < self.forget_gate_init < 1, 'forget_gate_init',
           self.forget_gate_init, 'must be in (0, 1)')
    if self.gate_init == 'inner_lr':
      _check(self.update_rule != 'meta_lstm' or self.inner_lr < 1,
             'inner_lr', self.inner_lr,
             'must be < 1 with gate_init=inner_lr (the input gate is a '
             'sigmoid)')
    _positive_int('hidden_size', self.hidden_size)
    _check(self.preprocess_p > 0, 'preprocess_p', self.preprocess_p,
           'must be > 0')
    return self


@dataclasses.dataclass(frozen=True)
class InnerLoopConfig:
  """How `adapt` runs.

  Attributes:
    inner_steps: T, number of meta-LSTM updates on the support set.
    second_order: differentiate through the learner's gradient (exact
      meta-gradient) instead of treating gradient and loss as constants.
    transductive: at evaluation, normalise the query batch with its own
      statistics instead of the episode's running (support) statistics.
    bn_momentum: how support passes fold into the episode's running batch
      norm statistics (`learner.accumulate_bn_stats`): None averages all
      T + 1 passes, 1.0 (default) keeps the last pass, at theta_T (chosen on
      meta-valid: +1.2 points over the average for the mini run).
    train_query_stats: `batch` (the original code: meta-training normalises
      the query set with its own statistics) or `support` (with the running
      support statistics, as evaluation does).
    conv_dtype: the precision of the learner's convolutions and activations
      in first-order passes (`learner.features`): `float32`, `bfloat16`
      (parameters, batch-norm statistics, losses, gradients and the
      meta-learner stay float32), or `auto` (bfloat16 where the CPU has
      AVX512-BF16 or AMX, see `runtime.resolve_conv_dtype`). Second-order
      passes are always float32 (or the parameters' dtype); exported
      SavedModels always run float32.
  """
  inner_steps: int = 8
  second_order: bool = False
  transductive: bool = False
  bn_momentum: Optional[float] = 1.0
  train_query_stats: str = 'batch'
  conv_dtype: str = 'float32'

  def validate(self) -> 'InnerLoopConfig':
    _positive_int('inner_steps', self.inner_steps)
    if self.bn_momentum is not None:
      _check(0.0 < self.bn_momentum <= 1.0, 'bn_momentum', self.bn_momentum,
             'must be in (0, 1] (or unset for the mean over passes)')
    _check(self.train_query_stats in ('batch', 'support'),
           'train_query_stats', self.train_query_stats,
           "must be 'batch' or 'support'")
    _check(self.conv_dtype in CONV_DTYPES, 'conv_dtype', self.conv_dtype,
           f'must be one of {CONV_DTYPES}')
    return self


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Outer loop, evaluation and bookkeeping.

  `strategy` names the `tf.distribute` strategy (`distribute.make_strategy`)
  that splits each meta-batch across replicas: `default` (one device),
  `mirrored` (the local GPUs), `multi_worker` (machines of `TF_CONFIG`) or
  `tpu` (on `tpu_address`, None: the local TPU). `meta_batch_size` must be a
  multiple of the replicas in sync.

  `init_from`: where theta_0 starts. `scratch`: `learner.init_params`;
  `pretrained`: the learner is first trained as an ordinary classifier over
  all meta-train classes (`baselines.pretrain`, for `init_pretrain_seconds` /
  `init_pretrain_steps`, whichever ends first), and theta_0 starts from its
  conv/BN parameters and a zero head. The pretraining time counts towards
  `max_train_seconds`.

  `lr_schedule`: `constant` (Adam at `learning_rate` throughout) or `cosine`
  (from `learning_rate` down to `final_learning_rate` over the run, the run's
  progress being the larger of step / `max_steps` and meta-training seconds /
  `max_train_seconds`; `schedules.py`).
  """
  learning_rate: float = 1e-3
  lr_schedule: str = 'constant'
  final_learning_rate: float = 0.0
  clip_norm: float = 0.25
  meta_batch_size: int = 1
  max_steps: int = 1000
  eval_every: int = 200
  eval_episodes: int = 100
  test_episodes: int = 600
  checkpoint_every: int = 200
  keep_checkpoints: int = 3
  log_every: int = 50
  seed: int = 0
  deterministic: bool = False
  jit_compile: bool = False
  max_train_seconds: float = 0.0
  quiet: bool = False
  export: bool = True
  strategy: str = 'default'
  tpu_address: Optional[str] = None
  init_from: str = 'scratch'
  init_pretrain_seconds: float = 120.0
  init_pretrain_steps: int = 100000
  init_pretrain_batch_size: int = 64

  def validate(self) -> 'TrainConfig':
    _check(self.learning_rate > 0, 'learning_rate', self.learning_rate,
           'must be > 0')
    _check(self.lr_schedule in LR_SCHEDULES, 'lr_schedule', self.lr_schedule,
           f'must be one of {LR_SCHEDULES}')
    _check(0 <= self.final_learning_rate <= self.learning_rate,
           'final_learning_rate', self.final_learning_rate,
           f'must be in [0, learning_rate={self.learning_rate}]')
    _check(self.clip_norm >= 0, 'clip_norm', self.clip_norm,
           'must be >= 0 (0 disables clipping)')
    for name in ('meta_batch_size', 'max_steps', 'eval_every', 'eval_episodes',
                 'test_episodes', 'checkpoint_every', 'keep_checkpoints',
                 'log_every'):
      _positive_int(name, getattr(self, name))
    _check(isinstance(self.seed, int) and self.seed >= 0, 'seed', self.seed,
           'must be a non-negative integer')
    _check(self.max_train_seconds >= 0, 'max_train_seconds',
           self.max_train_seconds, 'must be >= 0 (0 means no limit)')
    _check(self.strategy in STRATEGIES, 'strategy', self.strategy,
           f'must be one of {STRATEGIES}')
    _check(self.init_from in INIT_FROM, 'init_from', self.init_from,
           f'must be one of {INIT_FROM}')
    _check(self.init_pretrain_seconds >= 0, 'init_pretrain_seconds',
           self.init_pretrain_seconds, 'must be >= 0 (0 means no limit)')
    _positive_int('init_pretrain_steps', self.init_pretrain_steps)
    _positive_int('init_pretrain_batch_size', self.init_pretrain_batch_size)
    return self


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one run needs."""
  data: DataConfig = DataConfig()
  episode: EpisodeConfig = EpisodeConfig()
  learner: LearnerConfig = LearnerConfig()
  meta_learner: MetaLearnerConfig = MetaLearnerConfig()
  inner_loop: InnerLoopConfig = InnerLoopConfig()
  train: TrainConfig = TrainConfig()

  def validate(self) -> 'ExperimentConfig':
    for part in (self.data, self.episode, self.learner, self.meta_learner,
                 self.inner_loop, self.train):
      part.validate()
    _check(self.learner.num_ways == self.episode.num_ways, 'learner.num_ways',
           self.learner.num_ways,
           f'must equal episode.num_ways={self.episode.num_ways}')
    _check(self.learner.image_size == self.data.image_size,
           'learner.image_size', self.learner.image_size,
           f'must equal data.image_size={self.data.image_size}')
    _check(self.learner.channels == self.data.channels, 'learner.channels',
           self.learner.channels,
           f'must equal data.channels={self.data.channels}')
    if self.data.dataset != 'omniglot':
      _check(self.episode.episode_classes == 'any', 'episode_classes',
             self.episode.episode_classes,
             'within_alphabet needs dataset=omniglot (alphabets)')
      _check(not self.episode.distinct_drawers, 'distinct_drawers',
             self.episode.distinct_drawers,
             'needs dataset=omniglot (drawers)')
    return self

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)
