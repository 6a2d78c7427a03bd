"""The paper's non-meta baselines, and the pretraining they share.

  config.py             `BaselineConfig`: pretraining and fine-tuning settings
  pretrain_data.py      the pretraining's batches, pool checks, loss sample
  pretraining.py        `pretrain`: the learner as a C-way classifier over all
                        meta-train classes (resumable, cached); also theta_0
                        for a meta-learner's `--init_from=pretrained`
  nearest_neighbour.py  1-NN (cosine) in the pretrained learner's features
  finetune.py           SGD on the support set from the pretrained learner
  scoring.py            `evaluate_baselines`: both methods on the
                        experiment's fixed meta-valid / meta-test episodes
"""

from meta_lstm_tf.baselines.config import BaselineConfig
from meta_lstm_tf.baselines.scoring import evaluate_baselines
from meta_lstm_tf.baselines.pretraining import initial_params_of
from meta_lstm_tf.baselines.pretraining import pretrain

__all__ = ['BaselineConfig', 'evaluate_baselines', 'initial_params_of',
           'pretrain']
