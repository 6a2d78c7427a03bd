"""How a setting is declared, once, and the choices settings take.

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
EPISODE_CLASSES = ('any', 'within_alphabet', 'mixed')
# The meta-train stream's classes: 'same' follows episode_classes.
TRAIN_EPISODE_CLASSES = ('same',) + EPISODE_CLASSES
TRAIN_QUERY_STATS = ('batch', 'support')
# InnerLoopConfig.head_init: theta_0's linear head as meta-learned (the
# paper) or set per episode from the support set's class prototypes.
HEAD_INITS = ('learned', 'prototypes')


def check(condition: bool, field: str, value, requirement: str) -> None:
  """Raises ValueError `field=value: requirement` unless `condition`."""
  if not condition:
    raise ValueError(f'{field}={value!r}: {requirement}')


def logit(p: float) -> float:
  return math.log(p) - math.log1p(-p)


def positive_int(field: str, value) -> None:
  check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
         field, value, 'must be a positive integer')
