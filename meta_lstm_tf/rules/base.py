"""The interface every inner-loop update rule implements.

Shapes: P learner coordinates.

An update rule is a Keras layer that owns its meta-parameters, among them the
learned initial learner parameters theta_0 (`initial_params`, [P]), and
implements two pure methods the inner loop calls:

    state_0 = rule.initial_state(weights, theta_0)
    state_t = rule.update(weights, state_{t-1}, grad_t, loss_t)

`weights = rule.prepare(rule.meta_weights())` are the rule's other
meta-parameters as tensors, read (and arranged for `update`) once per episode
outside the loop, so the loop body only sees tensors and a test can pass
float64 weights of its own. Every state is a
NamedTuple with at least the [P] fields

    params       theta_t, the learner's flat parameters
    forget_gate  f_t
    input_gate   i_t

because every rule here is an instance of

    theta_t = f_t * theta_{t-1} - i_t * grad_t

(`meta_lstm`: both gates computed by the meta-LSTM; `sgd`: f = 1, i = lr;
`meta_sgd`: f = 1, i = a learned rate per coordinate). The gates are what
TensorBoard shows for every rule. `inner_loop.adapt` only talks to this
interface: it never branches on which rule it runs.
"""

import keras
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import learners


class UpdateRule(keras.layers.Layer):
  """Base class: holds the learner and theta_0.

  Subclasses create their variables (theta_0 with `_create_initial_params`)
  and implement `config_kwargs`, `meta_weights`, `initial_state` and
  `update`.

  Args:
    learner: what the rule adapts: a `LearnerConfig` (the built-in conv
      learner, or its dict as `get_config` writes it), a built `keras.Model`
      (any architecture, `learners.KerasLearner`; theta_0 starts as its
      weights) or a `learners.Learner`.
    seed: the built-in learner's initialisation seed.
    learner_config: the same as `learner` (the name earlier configs use).
  """

  def __init__(self, learner=None, seed: int = 0, *, learner_config=None,
               **kwargs):
    super().__init__(**kwargs)
    if learner is None:
      learner = learner_config
    if learner is None:
      raise ValueError('an update rule needs a learner (a LearnerConfig or a '
                       'built keras.Model)')
    self.learner = learners.as_learner(learner)
    # The built-in learner's config (None for other learners).
    self.learner_config = getattr(self.learner, 'config', None)
    self.seed = int(seed)
    self.param_spec = self.learner.param_spec
    self.num_coordinates = self.learner.num_coordinates

  def _create_initial_params(self) -> None:
    """theta_0, initialised from the learner (`Learner.initial_params`)."""
    init = np.asarray(self.learner.initial_params(self.seed))
    self.initial_params = self.add_weight(
        name='initial_params', shape=(self.num_coordinates,),
        initializer=keras.initializers.Constant(init),
        dtype=keras.backend.standardize_dtype(init.dtype))

  def set_initial_params(self, values) -> None:
    """theta_0 <- `values` [P], e.g. a pretrained learner's parameters.

    Raises:
      ValueError: `values` of another shape, or holding NaN or Inf.
    """
    values = tf.convert_to_tensor(values, self.initial_params.dtype)
    if tuple(values.shape) != (self.num_coordinates,):
      raise ValueError(f'initial params of shape {tuple(values.shape)}; this '
                       f'learner has {self.num_coordinates} coordinates')
    if not bool(tf.reduce_all(tf.math.is_finite(values))):
      raise ValueError('initial params hold NaN or Inf')
    self.initial_params.assign(values)

  @classmethod
  def from_experiment(cls, learner_config: config_lib.LearnerConfig,
                      meta_config: config_lib.MetaLearnerConfig,
                      seed: int = 0, **kwargs) -> 'UpdateRule':
    """The rule for an experiment's learner and meta-learner configs."""
    return cls(learner_config, seed=seed,
               **cls.config_kwargs(meta_config), **kwargs)

  @classmethod
  def config_kwargs(cls, meta_config: config_lib.MetaLearnerConfig) -> dict:
    """The constructor arguments this rule takes from `meta_config`."""
    raise NotImplementedError

  def meta_weights(self):
    """The rule's meta-parameters other than theta_0, as a nest of tensors."""
    raise NotImplementedError

  def prepare(self, weights):
    """`weights` arranged for `update`; `adapt` calls it once per episode.

    Default: as they are. Must be differentiable (meta-gradients flow
    through it) and accept its own output.
    """
    return weights

  def initial_state(self, weights, params: tf.Tensor):
    """The state at t = 0 with `params` = theta_0 ([P])."""
    raise NotImplementedError

  def update(self, weights, state, grad: tf.Tensor, loss: tf.Tensor):
    """One update: the state at t from the state at t - 1.

    Args:
      weights: `prepare(meta_weights())` (or of the same structure).
      state: the state at t - 1 (its `params` is theta_{t-1}).
      grad: [P] gradient of the support loss at theta_{t-1}.
      loss: [] support loss at theta_{t-1}.
    """
    raise NotImplementedError

  def get_config(self):
    base = super().get_config()
    key = ('learner_config' if self.learner_config is not None
           else 'learner')
    base.update({key: self.learner.get_config(), 'seed': self.seed})
    return base
