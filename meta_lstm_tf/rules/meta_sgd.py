"""The `meta_sgd` update rule: a learned step size for every coordinate.

Shapes: P learner coordinates.

    theta_t = theta_{t-1} - alpha * grad_t      (f_t = 1, i_t = alpha)

Meta-SGD (Li et al. 2017): both theta_0 and alpha ([P]) are meta-learned.
alpha starts at `MetaLearnerConfig.inner_lr` for every coordinate (the paper
samples it from U(0.005, 0.1)), so before meta-training the rule is exactly
the `sgd` rule with that learning rate. Nothing keeps alpha positive: as in
the paper, a coordinate may learn to ascend.
"""

import keras
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.rules import sgd


@keras.saving.register_keras_serializable(package='meta_lstm_tf')
class MetaSGDRule(sgd.GradientDescentRule):
  """Learned per-coordinate learning rates `learning_rates` [P] and theta_0."""

  def __init__(self, learner=None, initial_learning_rate: float = 0.1,
               seed: int = 0, **kwargs):
    super().__init__(learner, seed=seed, **kwargs)
    if not initial_learning_rate > 0:
      raise ValueError(f'initial_learning_rate={initial_learning_rate!r}: '
                       'must be > 0')
    self.initial_learning_rate = float(initial_learning_rate)
    self.learning_rates = self.add_weight(
        name='learning_rates', shape=(self.num_coordinates,),
        initializer=keras.initializers.Constant(self.initial_learning_rate))
    self._create_initial_params()
    self.built = True

  @classmethod
  def config_kwargs(cls, meta_config: config_lib.MetaLearnerConfig) -> dict:
    return dict(initial_learning_rate=meta_config.inner_lr)

  def meta_weights(self) -> tf.Tensor:
    """alpha, [P]."""
    return tf.convert_to_tensor(self.learning_rates)

  def get_config(self):
    base = super().get_config()
    base['initial_learning_rate'] = self.initial_learning_rate
    return base
