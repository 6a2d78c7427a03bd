"""How a run trains (the outer loop, its budget, validation and test) and
where and how its computation runs."""

import dataclasses
from typing import Optional

from meta_lstm_tf.config import settings


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The outer loop, its budget, validation and test.

  `init_from`: where theta_0 starts. `scratch`: `conv_ops.init_params`;
  `pretrained`: the learner is first trained as an ordinary classifier over
  all meta-train classes (`baselines.pretrain`, for `init_pretrain_seconds` /
  `init_pretrain_steps`, whichever ends first), and theta_0 starts from its
  conv/BN parameters and a zero head. The pretraining time counts towards
  `max_train_seconds`.

  `lr_schedule`: `constant` (Adam at `learning_rate` throughout) or `cosine`
  (from `learning_rate` down to `final_learning_rate` over the run, the run's
  progress being the larger of step / `max_steps` and meta-training seconds /
  `max_train_seconds`; `training/schedules.py`).

  `trainval`: the meta-train pool is the meta-train and meta-valid classes
  (`data.pools.load_pools`); `best/` then holds the last validation, not the
  best, since the validation classes are trained on.
  """
  learning_rate: float = settings.setting(
      1e-3, 'Adam learning rate (the initial one under --lr_schedule=cosine).',
      record=True)
  lr_schedule: str = settings.setting(
      'constant', 'constant, or cosine: from --learning_rate to '
      '--final_learning_rate over the run (by the larger of its step and '
      'time fractions).', choices=settings.LR_SCHEDULES, record=True)
  final_learning_rate: float = settings.setting(
      0.0, 'Where --lr_schedule=cosine ends.', record=True)
  clip_norm: float = settings.setting(
      0.25, 'Global-norm clipping of meta-gradients (0: off).')
  adam_epsilon: float = settings.setting(1e-7, "Adam's epsilon (Keras's default).")
  meta_batch_size: int = settings.setting(1, 'Episodes per meta-train step.',
                                 record=True)
  max_steps: int = settings.setting(1000, 'Meta-train steps.', role='budget')
  max_train_seconds: float = settings.setting(
      0.0, 'Stop meta-training after this many seconds (0: no limit); the '
      'time spent is kept across resumes.', role='budget')
  trainval: bool = settings.setting(
      False, 'Meta-train on the meta-valid classes too: the final retrain of '
      'settings chosen on meta-valid (Snell et al.). Validation then sees '
      'trained classes, so best/ keeps the last validation (tested and '
      'exported); choose nothing on such a run.', record=True)
  eval_every: int = settings.setting(200, 'Validate every this many steps.')
  eval_episodes: int = settings.setting(100, 'Fixed validation episodes.')
  test_episodes: int = settings.setting(600,
                               'Final test episodes (meta-test classes).')
  seed: int = settings.setting(0, 'Seed of initialisation and episodes.',
                      record=True)
  deterministic: bool = settings.setting(
      False, 'TF op determinism: a resumed run reproduces an uninterrupted '
      'one.')
  init_from: str = settings.setting(
      'scratch', 'Where theta_0 starts: scratch (random init) or pretrained '
      '(first train the learner as a classifier over all meta-train classes '
      'for --init_pretrain_seconds; that time counts towards '
      '--max_train_seconds).', choices=settings.INIT_FROM, record=True)
  init_pretrain_seconds: float = settings.setting(
      120.0, 'Pretraining time of --init_from=pretrained (0: no limit).')
  init_pretrain_steps: int = settings.setting(
      100000, 'Pretraining steps (batches) of --init_from=pretrained.')
  init_pretrain_batch_size: int = settings.setting(
      64, 'Pretraining batch size of --init_from=pretrained.')

  def validate(self) -> 'TrainConfig':
    settings.check(self.learning_rate > 0, 'learning_rate', self.learning_rate,
           'must be > 0')
    settings.check(self.lr_schedule in settings.LR_SCHEDULES, 'lr_schedule', self.lr_schedule,
           f'must be one of {settings.LR_SCHEDULES}')
    settings.check(0 <= self.final_learning_rate <= self.learning_rate,
           'final_learning_rate', self.final_learning_rate,
           f'must be in [0, learning_rate={self.learning_rate}]')
    settings.check(self.clip_norm >= 0, 'clip_norm', self.clip_norm,
           'must be >= 0 (0 disables clipping)')
    for name in ('meta_batch_size', 'max_steps', 'eval_every', 'eval_episodes',
                 'test_episodes'):
      settings.positive_int(name, getattr(self, name))
    settings.check(isinstance(self.seed, int) and self.seed >= 0, 'seed', self.seed,
           'must be a non-negative integer')
    settings.check(self.max_train_seconds >= 0, 'max_train_seconds',
           self.max_train_seconds, 'must be >= 0 (0 means no limit)')
    settings.check(self.init_from in settings.INIT_FROM, 'init_from', self.init_from,
           f'must be one of {settings.INIT_FROM}')
    settings.check(self.init_pretrain_seconds >= 0, 'init_pretrain_seconds',
           self.init_pretrain_seconds, 'must be >= 0 (0 means no limit)')
    settings.positive_int('init_pretrain_steps', self.init_pretrain_steps)
    settings.positive_int('init_pretrain_batch_size', self.init_pretrain_batch_size)
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
  strategy: str = settings.setting(
      'default', 'tf.distribute strategy splitting each meta-batch across '
      'replicas: default (one device), mirrored (all local GPUs), '
      'multi_worker (the machines of TF_CONFIG), tpu. --meta_batch_size must '
      'be a multiple of the replicas.', choices=settings.STRATEGIES, role='runtime',
      record=True)
  tpu_address: Optional[str] = settings.setting(
      None, 'TPU name or grpc:// address for --strategy=tpu (default: the '
      'local TPU).', role='runtime')
  jit_compile: bool = settings.setting(
      False, 'XLA-compile the train and eval steps (for GPUs; off on CPU).',
      role='runtime')
  checkpoint_every: int = settings.setting(
      200, 'Checkpoint every this many steps.', role='runtime')
  keep_checkpoints: int = settings.setting(3, 'Checkpoints kept.', role='runtime')
  log_every: int = settings.setting(
      50, 'Write TensorBoard summaries every this many steps.',
      role='runtime')
  quiet: bool = settings.setting(False, 'No progress bar; a log line per eval.',
                        role='runtime')
  export: bool = settings.setting(
      True, 'Export the best model as a SavedModel at the end.',
      role='runtime')

  def validate(self) -> 'RuntimeConfig':
    settings.check(self.strategy in settings.STRATEGIES, 'strategy', self.strategy,
           f'must be one of {settings.STRATEGIES}')
    for name in ('checkpoint_every', 'keep_checkpoints', 'log_every'):
      settings.positive_int(name, getattr(self, name))
    return self
