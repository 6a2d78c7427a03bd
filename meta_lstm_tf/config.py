"""Frozen, validated configuration objects, and the one declaration of
every setting.

Library code receives these; only `bin/cli.py` knows about flags. Every
config has a `validate()` that raises `ValueError` naming the offending field
and value.

Each field is declared once, with `setting(...)`: its default, its help text
(a field with help is a command-line flag of the same name), its choices and
its role. The flags (`bin/cli.define_flags`), the flags-to-config mapping
(`bin/cli.config_from_flags`), results.json's settings (`recorded_settings`)
and which settings change a run's numbers (`training/workdir.relevant_config`)
are all derived from these declarations. Roles:

  `experiment`  changes the numbers (the default)
  `budget`      how long a run trains: a resumed run may raise it
  `path`        where the data is: moving it changes nothing
  `runtime`     how the same computation runs or is recorded (every field of
                `RuntimeConfig`): strategy, XLA, logging, checkpoints, export
"""

import dataclasses
import math
from typing import Optional

ROLES = ('experiment', 'budget', 'path', 'runtime')


def setting(default, help_text: Optional[str] = None, *, choices=None,
            role: str = 'experiment', record: bool = False,
            flag_default=dataclasses.MISSING):
  """A config field declared once.

  Args:
    default: the field's default.
    help_text: the flag's help; None: the field is not a flag.
    choices: the allowed values (an enum flag).
    role: one of `ROLES`.
    record: whether results.json records the setting (`recorded_settings`).
    flag_default: the flag's default when it differs from the field's (None
      for "the data set's default", resolved by `bin/cli.config_from_flags`).
  """
  if role not in ROLES:
    raise ValueError(f'role={role!r}: must be one of {ROLES}')
  metadata = {'help': help_text, 'choices': choices, 'role': role,
              'record': record}
  if flag_default is not dataclasses.MISSING:
    metadata['flag_default'] = flag_default
  return dataclasses.field(default=default, metadata=metadata)


def derived(default):
  """A field an `ExperimentConfig` derives from its other parts (never
  stored in config.json, never a flag)."""
  return dataclasses.field(default=default, metadata={'derived': True})

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
TRAIN_QUERY_STATS = ('batch', 'support')


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
  dataset: str = setting(
      'omniglot', 'Data set: omniglot (TFDS, or --omniglot_dir), '
      'mini_imagenet (Ravi & Larochelle\'s split, a local copy in '
      '--data_root) or image_folder (--data_root/{train,val,test}/CLASS/'
      '*.png|jpg).', choices=DATASETS, record=True)
  data_root: Optional[str] = setting(
      None, 'Local copy of --dataset=mini_imagenet (images/ and train.csv, '
      'val.csv, test.csv; or train/CLASS/*.jpg, val/, test/) or '
      'image_folder. Never downloaded.', role='path')
  channels: int = setting(
      1, 'Image channels: 1 (gray) or 3 (RGB); default the data set\'s '
      '(omniglot 1, mini_imagenet and image_folder 3).', flag_default=None)
  omniglot_dir: Optional[str] = setting(
      None, 'Local copy of Omniglot (archives and/or extracted folders); '
      'default $OMNIGLOT_DIR, else TFDS downloads it.', role='path')
  data_dir: Optional[str] = setting(None, 'TFDS data directory.',
                                    role='path')
  split: str = setting('lake', 'Class split protocol.', choices=SPLITS,
                       record=True)
  split_dir: Optional[str] = setting(
      None, 'Directory with train.txt/val.txt/test.txt (split=vinyals); '
      'default: splits/vinyals/ of the local Omniglot copy (--omniglot_dir '
      'or $OMNIGLOT_DIR), where there is one.')
  minimal_subset: str = setting('small1',
                                'Background subset for split=minimal.',
                                choices=MINIMAL_SUBSETS)
  rotations: bool = setting(
      False, 'Add 90/180/270 degree rotations of meta-train classes as '
      'classes.')
  image_size: int = setting(
      28, 'Image side in pixels; default the data set\'s (omniglot 28, '
      'mini_imagenet and image_folder 84).', flag_default=None)

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
  num_ways: int = setting(5, 'N classes per episode.', record=True)
  num_shots: int = setting(1, 'K support examples per class.', record=True)
  num_queries: int = setting(15, 'Q query examples per class.', record=True)
  episode_classes: str = setting(
      'any', 'any: N classes from all of the pool; within_alphabet: all N '
      'from one Omniglot alphabet (Lake et al.\'s one-shot runs).',
      choices=EPISODE_CLASSES, record=True)
  distinct_drawers: bool = setting(
      False, 'Omniglot: support and query drawings of a class by different '
      'people (K support drawers, Q others, per episode; Lake et al.). '
      'Needs a local copy (--omniglot_dir).', record=True)
  augment: bool = setting(
      False, 'Meta-train episodes only: rotate (up to 10 degrees), zoom '
      '(0.9-1.1x) and shift (up to a tenth of the side) every image at '
      'random. Evaluation is never augmented.', record=True)

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
  """The conv learner: num_blocks x [conv3x3 -> BN -> ReLU -> maxpool2x2].

  Its shape (`num_ways`, `image_size`, `channels`) is given when the learner
  is used alone; inside an `ExperimentConfig` it is derived from the episode
  and data settings.
  """
  num_ways: int = derived(5)
  num_filters: int = setting(32, 'Filters per conv block of the learner.')
  num_blocks: int = setting(4, 'Conv blocks of the learner.')
  image_size: int = derived(28)
  channels: int = derived(1)
  bn_epsilon: float = setting(1e-3)

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
      `per_coordinate`; see `meta_lstm.MetaLSTMRule`.
    gate_bias_scale: the gate biases are `gate_bias_scale` times their
      variables, so the meta-optimizer moves them that much faster (1: the
      paper's plain biases).
    hidden_size, preprocess_p, weight_init_scale, forget_bias_range,
      input_bias_range: the meta-LSTM (`meta_lstm.MetaLSTMRule`).
  """
  update_rule: str = setting(
      'meta_lstm', 'Inner-loop update rule: meta_lstm (Ravi & Larochelle), '
      'sgd (MAML: fixed --inner_lr, learned init) or meta_sgd (learned '
      'per-coordinate rates and init).', choices=UPDATE_RULES, record=True)
  inner_lr: float = setting(
      0.1, 'Learning rate of update_rule=sgd; initial rates of meta_sgd; '
      'initial input gate of meta_lstm with --gate_init=inner_lr.',
      record=True)
  gate_init: str = setting(
      'paper', 'Meta-LSTM gate biases at initialisation: inner_lr (input '
      'gate = --inner_lr, forget gate = --forget_gate_init) or paper (the '
      "original code's U(-5,-4) input and U(4,5) forget biases).",
      choices=GATE_INITS, record=True)
  forget_gate_init: float = setting(
      0.9999, 'Initial forget gate of the meta-LSTM with '
      '--gate_init=inner_lr.', record=True)
  gate_bias: str = setting(
      'shared', 'Meta-LSTM gate biases: shared (the paper), per_tensor (one '
      'per learner tensor) or per_coordinate.', choices=GATE_BIASES,
      record=True)
  gate_bias_scale: float = setting(
      1.0, 'Meta-LSTM gate biases are this times their variables: the '
      'meta-optimizer moves them this much faster (1: plain biases).',
      record=True)
  hidden_size: int = setting(20, 'Hidden units of the meta-LSTM first '
                             'layer.', record=True)
  preprocess_p: float = setting(10.0)
  weight_init_scale: float = setting(0.01)
  forget_bias_range: tuple = setting((4.0, 5.0))
  input_bias_range: tuple = setting((-5.0, -4.0))

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
  inner_steps: int = setting(
      8, 'T meta-LSTM updates per episode (paper: 12 for 1-shot, 8 for 5).',
      record=True)
  second_order: bool = setting(
      False, 'Exact second-order meta-gradients (default first order, as '
      'the paper).', record=True)
  transductive: bool = setting(
      False, 'Evaluate with query-batch BN statistics (default: support '
      'statistics).')
  bn_momentum: Optional[float] = setting(
      1.0, 'How support passes fold into the running BN statistics: 1 keeps '
      'the last pass (at theta_T), 0 averages all passes.')
  train_query_stats: str = setting(
      'batch', 'BN statistics of the query pass in meta-training: batch '
      '(original code) or support (as at evaluation).',
      choices=TRAIN_QUERY_STATS)
  # results.json records it as resolved on the machine (`auto` depends on
  # the CPU): `training/train_lib`.
  conv_dtype: str = setting(
      'float32', "Precision of the learner's convolutions in first-order "
      'passes: float32, bfloat16, or auto (bfloat16 on CPUs with '
      'AVX512-BF16 or AMX). Exports always run float32.',
      choices=CONV_DTYPES, record=True)

  def validate(self) -> 'InnerLoopConfig':
    _positive_int('inner_steps', self.inner_steps)
    if self.bn_momentum is not None:
      _check(0.0 < self.bn_momentum <= 1.0, 'bn_momentum', self.bn_momentum,
             'must be in (0, 1] (or unset for the mean over passes)')
    _check(self.train_query_stats in TRAIN_QUERY_STATS,
           'train_query_stats', self.train_query_stats,
           "must be 'batch' or 'support'")
    _check(self.conv_dtype in CONV_DTYPES, 'conv_dtype', self.conv_dtype,
           f'must be one of {CONV_DTYPES}')
    return self


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The outer loop, its budget, validation and test.

  `init_from`: where theta_0 starts. `scratch`: `learner.init_params`;
  `pretrained`: the learner is first trained as an ordinary classifier over
  all meta-train classes (`baselines.pretrain`, for `init_pretrain_seconds` /
  `init_pretrain_steps`, whichever ends first), and theta_0 starts from its
  conv/BN parameters and a zero head. The pretraining time counts towards
  `max_train_seconds`.

  `lr_schedule`: `constant` (Adam at `learning_rate` throughout) or `cosine`
  (from `learning_rate` down to `final_learning_rate` over the run, the run's
  progress being the larger of step / `max_steps` and meta-training seconds /
  `max_train_seconds`; `training/schedules.py`).
  """
  learning_rate: float = setting(
      1e-3, 'Adam learning rate (the initial one under --lr_schedule=cosine).',
      record=True)
  lr_schedule: str = setting(
      'constant', 'constant, or cosine: from --learning_rate to '
      '--final_learning_rate over the run (by the larger of its step and '
      'time fractions).', choices=LR_SCHEDULES, record=True)
  final_learning_rate: float = setting(
      0.0, 'Where --lr_schedule=cosine ends.', record=True)
  clip_norm: float = setting(
      0.25, 'Global-norm clipping of meta-gradients (0: off).')
  adam_epsilon: float = setting(1e-7, "Adam's epsilon (Keras's default).")
  meta_batch_size: int = setting(1, 'Episodes per meta-train step.',
                                 record=True)
  max_steps: int = setting(1000, 'Meta-train steps.', role='budget')
  max_train_seconds: float = setting(
      0.0, 'Stop meta-training after this many seconds (0: no limit); the '
      'time spent is kept across resumes.', role='budget')
  eval_every: int = setting(200, 'Validate every this many steps.')
  eval_episodes: int = setting(100, 'Fixed validation episodes.')
  test_episodes: int = setting(600,
                               'Final test episodes (meta-test classes).')
  seed: int = setting(0, 'Seed of initialisation and episodes.',
                      record=True)
  deterministic: bool = setting(
      False, 'TF op determinism: a resumed run reproduces an uninterrupted '
      'one.')
  init_from: str = setting(
      'scratch', 'Where theta_0 starts: scratch (random init) or pretrained '
      '(first train the learner as a classifier over all meta-train classes '
      'for --init_pretrain_seconds; that time counts towards '
      '--max_train_seconds).', choices=INIT_FROM, record=True)
  init_pretrain_seconds: float = setting(
      120.0, 'Pretraining time of --init_from=pretrained (0: no limit).')
  init_pretrain_steps: int = setting(
      100000, 'Pretraining steps (batches) of --init_from=pretrained.')
  init_pretrain_batch_size: int = setting(
      64, 'Pretraining batch size of --init_from=pretrained.')

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
                 'test_episodes'):
      _positive_int(name, getattr(self, name))
    _check(isinstance(self.seed, int) and self.seed >= 0, 'seed', self.seed,
           'must be a non-negative integer')
    _check(self.max_train_seconds >= 0, 'max_train_seconds',
           self.max_train_seconds, 'must be >= 0 (0 means no limit)')
    _check(self.init_from in INIT_FROM, 'init_from', self.init_from,
           f'must be one of {INIT_FROM}')
    _check(self.init_pretrain_seconds >= 0, 'init_pretrain_seconds',
           self.init_pretrain_seconds, 'must be >= 0 (0 means no limit)')
    _positive_int('init_pretrain_steps', self.init_pretrain_steps)
    _positive_int('init_pretrain_batch_size', self.init_pretrain_batch_size)
    return self


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """How a run's computation is placed and recorded; none of it changes
  the numbers, so a run resumes the same under any of these (as Model
  Garden's `RuntimeConfig`).

  `strategy` names the `tf.distribute` strategy
  (`training/distribute.make_strategy`) that splits each meta-batch across
  replicas: `default` (one device), `mirrored` (the local GPUs),
  `multi_worker` (machines of `TF_CONFIG`) or `tpu` (on `tpu_address`, None:
  the local TPU). `meta_batch_size` must be a multiple of the replicas in
  sync.
  """
  strategy: str = setting(
      'default', 'tf.distribute strategy splitting each meta-batch across '
      'replicas: default (one device), mirrored (all local GPUs), '
      'multi_worker (the machines of TF_CONFIG), tpu. --meta_batch_size must '
      'be a multiple of the replicas.', choices=STRATEGIES, role='runtime',
      record=True)
  tpu_address: Optional[str] = setting(
      None, 'TPU name or grpc:// address for --strategy=tpu (default: the '
      'local TPU).', role='runtime')
  jit_compile: bool = setting(
      False, 'XLA-compile the train and eval steps (for GPUs; off on CPU).',
      role='runtime')
  checkpoint_every: int = setting(
      200, 'Checkpoint every this many steps.', role='runtime')
  keep_checkpoints: int = setting(3, 'Checkpoints kept.', role='runtime')
  log_every: int = setting(
      50, 'Write TensorBoard summaries every this many steps.',
      role='runtime')
  quiet: bool = setting(False, 'No progress bar; a log line per eval.',
                        role='runtime')
  export: bool = setting(
      True, 'Export the best model as a SavedModel at the end.',
      role='runtime')

  def validate(self) -> 'RuntimeConfig':
    _check(self.strategy in STRATEGIES, 'strategy', self.strategy,
           f'must be one of {STRATEGIES}')
    for name in ('checkpoint_every', 'keep_checkpoints', 'log_every'):
      _positive_int(name, getattr(self, name))
    return self


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one run needs.

  The learner's shape is derived, not stored: `learner.num_ways` is
  `episode.num_ways`, `learner.image_size` and `learner.channels` are the
  data's (whatever the `learner` given says).
  """
  data: DataConfig = DataConfig()
  episode: EpisodeConfig = EpisodeConfig()
  learner: LearnerConfig = LearnerConfig()
  meta_learner: MetaLearnerConfig = MetaLearnerConfig()
  inner_loop: InnerLoopConfig = InnerLoopConfig()
  train: TrainConfig = TrainConfig()
  runtime: RuntimeConfig = RuntimeConfig()

  def __post_init__(self):
    shaped = dataclasses.replace(
        self.learner, num_ways=self.episode.num_ways,
        image_size=self.data.image_size, channels=self.data.channels)
    object.__setattr__(self, 'learner', shaped)

  def validate(self) -> 'ExperimentConfig':
    for part in (self.data, self.episode, self.learner, self.meta_learner,
                 self.inner_loop, self.train, self.runtime):
      part.validate()
    if self.data.dataset != 'omniglot':
      _check(self.episode.episode_classes == 'any', 'episode_classes',
             self.episode.episode_classes,
             'within_alphabet needs dataset=omniglot (alphabets)')
      _check(not self.episode.distinct_drawers, 'distinct_drawers',
             self.episode.distinct_drawers,
             'needs dataset=omniglot (drawers)')
    return self

  def to_dict(self) -> dict:
    """{part: {field: value}}, derived fields left out (config.json)."""
    return {part.name: {f.name: _plain(getattr(value, f.name))
                        for f in dataclasses.fields(value)
                        if not f.metadata.get('derived')}
            for part in dataclasses.fields(self)
            for value in (getattr(self, part.name),)}

  @classmethod
  def from_dict(cls, value: dict) -> 'ExperimentConfig':
    """Inverse of `to_dict()`; also reads the config.json of earlier
    versions (`migrate`). Raises TypeError on an unknown field."""
    value = migrate(value)
    parts = {}
    for part in dataclasses.fields(cls):
      kwargs = {key: tuple(item) if isinstance(item, list) else item
                for key, item in value.get(part.name, {}).items()}
      parts[part.name] = part.type(**kwargs)
    return cls(**parts)


def _plain(value):
  return list(value) if isinstance(value, tuple) else value


# Settings that moved from one part to another, for reading config.json
# files written before the move: {old part: {field: new part}}.
_MOVED = {'train': {f.name: 'runtime'
                    for f in dataclasses.fields(RuntimeConfig)}}


def migrate(value: dict) -> dict:
  """An earlier version's `to_dict()` in today's layout: settings that
  moved (`_MOVED`: the runtime settings were in `train`) go to their part,
  and the derived learner shape (stored until it was derived) is dropped.
  Fields absent stay absent."""
  value = {part: dict(fields) for part, fields in value.items()}
  for old_part, moves in _MOVED.items():
    for field, new_part in moves.items():
      if field in value.get(old_part, {}):
        value.setdefault(new_part, {})[field] = value[old_part].pop(field)
  derived_fields = [f.name for f in dataclasses.fields(LearnerConfig)
                    if f.metadata.get('derived')]
  for field in derived_fields:
    value.get('learner', {}).pop(field, None)
  return value


def declared_settings(role: Optional[str] = None):
  """[(part name, dataclasses.Field)] of every declared (non-derived)
  setting of an `ExperimentConfig`, optionally only those of one role."""
  settings = []
  for part in dataclasses.fields(ExperimentConfig):
    for field in dataclasses.fields(part.type):
      if field.metadata.get('derived') or 'role' not in field.metadata:
        continue
      if role is None or field.metadata['role'] == role:
        settings.append((part.name, field))
  return settings


def recorded_settings(config: ExperimentConfig) -> dict:
  """The settings results.json records ({field: value}, flat): those
  declared with `record=True`."""
  return {field.name: _plain(getattr(getattr(config, part), field.name))
          for part, field in declared_settings()
          if field.metadata['record']}
