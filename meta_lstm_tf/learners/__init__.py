"""Learners behind one interface (`base.Learner`), and `as_learner`.

    base.py         the interface `inner_loop.adapt` talks to
    conv.py         `ConvLearner`, the built-in conv net (`LearnerConfig`)
    keras_model.py  `KerasLearner`, any built Keras 3 model; `conv_net`, the
                    built-in architecture as a Keras model
"""

import keras

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.learners.base import Learner
from meta_lstm_tf.learners.conv import ConvLearner
from meta_lstm_tf.learners.keras_model import KerasLearner
from meta_lstm_tf.learners.keras_model import conv_net


def as_learner(learner) -> Learner:
  """A `Learner` from a `LearnerConfig` (or its dict), a built
  `keras.Model`, or a `Learner` (returned as it is)."""
  if isinstance(learner, Learner):
    return learner
  if isinstance(learner, keras.Model):
    return KerasLearner(learner)
  if isinstance(learner, (config_lib.LearnerConfig, dict)):
    if isinstance(learner, dict) and 'model' in learner:
      return KerasLearner.from_config(learner)
    return ConvLearner(learner)
  raise TypeError(f'cannot make a learner from {type(learner).__name__}: '
                  'expected a LearnerConfig, a keras.Model or a Learner')


__all__ = ['Learner', 'ConvLearner', 'KerasLearner', 'as_learner', 'conv_net']
