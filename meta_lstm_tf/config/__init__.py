"""Frozen, validated configuration objects, each setting declared once.

Library code receives these; only `bin/cli.py` knows about flags. Every
config has a `validate()` that raises `ValueError` naming the offending field
and value.

    settings.py    `setting(...)`: how a field is declared (default, help,
                   choices, role, recorded), and the choices
    data.py        `DataConfig` (data set, class split) and
                   `EpisodeConfig` (episode shape, protocol, augmentation)
    model.py       `LearnerConfig`, `MetaLearnerConfig` (update rule),
                   `InnerLoopConfig`
    run.py         `TrainConfig` (outer loop, budget, validation, test) and
                   `RuntimeConfig` (strategy, XLA, logging, checkpoints,
                   export: nothing that changes the numbers)
    experiment.py  `ExperimentConfig`, its config.json form (`to_dict`,
                   `from_dict`, `migrate`), `declared_settings`,
                   `recorded_settings`

Everything is importable from here (`from meta_lstm_tf import config`).
"""

from meta_lstm_tf.config.experiment import ExperimentConfig
from meta_lstm_tf.config.experiment import declared_settings
from meta_lstm_tf.config.experiment import migrate
from meta_lstm_tf.config.experiment import recorded_settings
from meta_lstm_tf.config.data import DataConfig
from meta_lstm_tf.config.data import EpisodeConfig
from meta_lstm_tf.config.model import InnerLoopConfig
from meta_lstm_tf.config.model import LearnerConfig
from meta_lstm_tf.config.model import MetaLearnerConfig
from meta_lstm_tf.config.run import RuntimeConfig
from meta_lstm_tf.config.run import TrainConfig
from meta_lstm_tf.config.settings import CONV_DTYPES
from meta_lstm_tf.config.settings import DATASET_DEFAULTS
from meta_lstm_tf.config.settings import DATASETS
from meta_lstm_tf.config.settings import EPISODE_CLASSES
from meta_lstm_tf.config.settings import EXPORT_CONV_DTYPES
from meta_lstm_tf.config.settings import GATE_BIASES
from meta_lstm_tf.config.settings import GATE_INITS
from meta_lstm_tf.config.settings import INIT_FROM
from meta_lstm_tf.config.settings import LR_SCHEDULES
from meta_lstm_tf.config.settings import MINIMAL_SUBSETS
from meta_lstm_tf.config.settings import ROLES
from meta_lstm_tf.config.settings import SPLITS
from meta_lstm_tf.config.settings import STRATEGIES
from meta_lstm_tf.config.settings import TRAIN_QUERY_STATS
from meta_lstm_tf.config.settings import UPDATE_RULES
from meta_lstm_tf.config.settings import derived
from meta_lstm_tf.config.settings import setting

__all__ = [
    'CONV_DTYPES', 'DATASETS', 'DATASET_DEFAULTS', 'DataConfig',
    'EPISODE_CLASSES', 'EXPORT_CONV_DTYPES', 'EpisodeConfig',
    'ExperimentConfig', 'GATE_BIASES', 'GATE_INITS', 'INIT_FROM',
    'InnerLoopConfig', 'LR_SCHEDULES', 'LearnerConfig', 'MINIMAL_SUBSETS',
    'MetaLearnerConfig', 'ROLES', 'RuntimeConfig', 'SPLITS', 'STRATEGIES',
    'TRAIN_QUERY_STATS', 'TrainConfig', 'UPDATE_RULES', 'declared_settings',
    'derived', 'migrate', 'recorded_settings', 'setting',
]
