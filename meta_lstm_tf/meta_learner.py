"""`MetaLearner`: a meta-learner as a Keras model, for `fit()`.

Shapes: B episodes per batch, S support and Q query images per episode,
H, W, C images, N ways.

    learner = keras.Sequential([...])          # any built model -> [S, N]
    model = meta_lstm_tf.MetaLearner(learner, rule='meta_lstm')
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(train_episodes, steps_per_epoch=100, epochs=5,
              validation_data=valid_episodes,
              callbacks=[keras.callbacks.TensorBoard(...),
                         keras.callbacks.BackupAndRestore(...)])
    logits = model.classify(support_images, support_labels, query_images)
    model.export('/tmp/model/1')               # the CLI's SavedModel

`train_step` is one meta-train step on a batch of episodes (`types.Episode`
with a leading B axis, as `episodes.make_episode_dataset` yields): adapt to
each, take the mean query loss at theta_T and apply its gradient to the
rule's meta-parameters (`train_steps.meta_gradients`, the CLI's maths).
`test_step` adapts and scores without updating. Metrics: `loss` and
`accuracy`, the mean query cross-entropy and accuracy over the epoch's
episodes. Clipping is the optimizer's (e.g. `Adam(global_clipnorm=0.25)`).
"""

from typing import Optional

import keras
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import rules
from meta_lstm_tf.training import train_steps
from meta_lstm_tf import types


# The meta-LSTM settings of configs/base.flags (chosen on meta-valid; see
# the comments there), the defaults of a `MetaLearner`'s rule; the paper's
# are `gate_init='paper', gate_bias='shared', hidden_size=20`.
RECOMMENDED_RULE_SETTINGS = dict(
    gate_init='inner_lr', inner_lr=0.1, forget_gate_init=0.9999,
    gate_bias='per_tensor', gate_bias_scale=30.0, hidden_size=5)


def _as_episodes(data) -> types.Episode:
  """A `types.Episode` (or a 4-tuple / dict with its fields)."""
  if isinstance(data, types.Episode):
    return data
  if isinstance(data, dict):
    return types.Episode(**{field: data[field]
                            for field in types.Episode._fields})
  if isinstance(data, (tuple, list)) and len(data) == 4:
    return types.Episode(*data)
  raise ValueError('expected episodes: a types.Episode, or (support_images, '
                   'support_labels, query_images, query_labels)')


@keras.saving.register_keras_serializable(package='meta_lstm_tf')
class MetaLearner(keras.Model):
  """Meta-learns an update rule (and theta_0) for a learner, as a Keras model.

  Args:
    learner: a built `keras.Model` mapping images [S, H, W, C] to logits
      [S, N] (its weights become theta_0's start), or a `LearnerConfig`
      (the built-in conv learner).
    rule: an update rule name of `rules.RULES` ('meta_lstm', 'sgd',
      'meta_sgd') or an `rules.UpdateRule` built for `learner`.
    inner_steps: T.
    second_order: exact second-order meta-gradients (default first order).
    transductive: evaluate with the query batch's BN statistics.
    train_query_stats, bn_momentum, conv_dtype, head_init: as
      `InnerLoopConfig` (`head_init='prototypes'` needs a learner with a
      linear head: the built-in conv learner).
    seed: the built-in learner's initialisation.
    rule_kwargs: `MetaLearnerConfig` fields for the rule, over
      `RECOMMENDED_RULE_SETTINGS` (e.g. `hidden_size`, `gate_bias` for the
      meta-LSTM; `inner_lr`, the learning rate of sgd and the initial one
      of meta_sgd).
  """

  def __init__(self, learner, rule='meta_lstm', *, inner_steps: int = 5,
               second_order: bool = False, transductive: bool = False,
               train_query_stats: str = 'batch',
               bn_momentum: Optional[float] = 1.0,
               conv_dtype: str = 'float32', head_init: str = 'learned',
               seed: int = 0,
               rule_kwargs: Optional[dict] = None, **kwargs):
    super().__init__(**kwargs)
    if isinstance(rule, rules.UpdateRule):
      self.rule = rule
    elif rule in rules.RULES:
      meta_config = config_lib.MetaLearnerConfig(
          update_rule=rule, **{**RECOMMENDED_RULE_SETTINGS,
                               **(rule_kwargs or {})}).validate()
      self.rule = rules.RULES[rule].from_experiment(learner, meta_config,
                                                    seed=seed, name=rule)
    else:
      raise ValueError(f'rule={rule!r}: must be one of {tuple(rules.RULES)} '
                       'or an UpdateRule')
    # Tracked, so checkpoints and SavedModels hold the learner's own
    # (non-trainable) weights; never trained itself.
    self.learner_model = learner if isinstance(learner, keras.Model) else None
    self.inner_config = config_lib.InnerLoopConfig(
        inner_steps=inner_steps, second_order=second_order,
        transductive=transductive, bn_momentum=bn_momentum,
        train_query_stats=train_query_stats, conv_dtype=conv_dtype,
        head_init=head_init).validate()
    inner_loop.check_head_init(self.rule.learner, head_init)
    self._rule_name = rule if isinstance(rule, str) else None
    self._rule_kwargs = dict(rule_kwargs or {})
    self._seed = seed
    self.loss_tracker = keras.metrics.Mean(name='loss')
    self.accuracy_tracker = keras.metrics.Mean(name='accuracy')
    self.built = True

  @property
  def metrics(self):
    return [self.loss_tracker, self.accuracy_tracker]

  @property
  def meta_variables(self):
    """What `fit` trains: the rule's meta-parameters, theta_0 included."""
    return self.rule.trainable_variables

  # The learner's own weights are theta_0's starting value, not trained:
  # only the rule's are trainable here, so the optimizer is built (also when
  # `BackupAndRestore` or `load_weights` restores its state) for exactly
  # the variables `train_step` updates.
  @property
  def trainable_weights(self):
    return self.rule.trainable_weights

  @property
  def trainable_variables(self):
    return self.rule.trainable_variables

  @property
  def non_trainable_weights(self):
    trainable = {id(v) for v in self.trainable_weights}
    return [v for v in self.weights if id(v) not in trainable]

  @property
  def non_trainable_variables(self):
    trainable = {id(v) for v in self.trainable_variables}
    return [v for v in self.variables if id(v) not in trainable]

  def train_step(self, data):
    episodes = _as_episodes(data)
    grads, metrics = train_steps.meta_gradients(self.rule, episodes,
                                                self.inner_config)
    self.optimizer.apply_gradients(zip(grads, self.meta_variables))
    self.loss_tracker.update_state(metrics['loss'])
    self.accuracy_tracker.update_state(metrics['accuracy'])
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    episodes = _as_episodes(data)
    if episodes.support_images.shape[0] is not None:
      losses, accuracies, _ = inner_loop.meta_batch_losses(
          self.rule, episodes, self.inner_config, training=False)
      losses, accuracies = tf.stack(losses), tf.stack(accuracies)
    else:  # A batch of unknown size (e.g. a last, smaller one).
      losses, accuracies = tf.map_fn(
          lambda episode: inner_loop.episode_loss(
              self.rule, types.Episode(*episode), self.inner_config,
              training=False)[:2], tuple(episodes),
          fn_output_signature=(tf.float32, tf.float32))
    self.loss_tracker.update_state(losses)
    self.accuracy_tracker.update_state(accuracies)
    return {m.name: m.result() for m in self.metrics}

  def predict_step(self, data):
    episodes = _as_episodes(data)
    return self(episodes, training=False)

  def call(self, inputs, training=False):
    """Query logits [B, Q, N] of a batch of episodes (or [Q, N] of one:
    `inputs` with unbatched [S, H, W, C] support images). `inputs`: an
    `Episode`, a dict, or (support_images, support_labels, query_images[,
    query_labels])."""
    if isinstance(inputs, (tuple, list)) and len(inputs) == 3:
      inputs = tuple(inputs) + (None,)
    episodes = _as_episodes(inputs)
    if episodes.support_images.shape.rank == 4:
      return self.classify(episodes.support_images, episodes.support_labels,
                           episodes.query_images, training=training)
    if episodes.support_images.shape[0] is None:
      return tf.map_fn(
          lambda e: self.classify(e[0], e[1], e[2], training=training),
          (episodes.support_images, episodes.support_labels,
           episodes.query_images), fn_output_signature=tf.float32)
    return tf.stack([self.classify(episodes.support_images[b],
                                   episodes.support_labels[b],
                                   episodes.query_images[b],
                                   training=training)
                     for b in range(episodes.support_images.shape[0])])

  def classify(self, support_images, support_labels, query_images, *,
               training: bool = False) -> tf.Tensor:
    """Adapts to one support set (images float [S, H, W, C] as the learner
    takes them, labels int [S] in [0, N)) and returns query logits [Q, N]."""
    logits, _ = inner_loop.adapt_and_classify(
        self.rule, tf.convert_to_tensor(support_images),
        tf.cast(support_labels, tf.int32), tf.convert_to_tensor(query_images),
        self.inner_config, training=training)
    return logits

  def adapt(self, support_images, support_labels) -> types.AdaptationResult:
    """theta_T, the BN statistics and the support losses for one support
    set (`inner_loop.adapt`)."""
    _, result = inner_loop.adapt_and_classify(
        self.rule, tf.convert_to_tensor(support_images),
        tf.cast(support_labels, tf.int32),
        tf.convert_to_tensor(support_images), self.inner_config,
        training=False)
    return result

  def experiment_config(self, dataset: str = 'omniglot'
                        ) -> config_lib.ExperimentConfig:
    """An `ExperimentConfig` describing this model for export: `dataset`
    names the preprocessing (omniglot: inverted gray strokes; image_folder:
    photographs as they are)."""
    learner = self.rule.learner
    # A Keras learner has its own architecture: only the shape fields of
    # this config are its (one block: any image size is valid).
    learner_config = self.rule.learner_config or config_lib.LearnerConfig(
        num_ways=learner.num_ways, image_size=learner.image_size,
        channels=learner.channels, num_blocks=1)
    update_rule = self._rule_name or next(
        (name for name, cls in rules.RULES.items()
         if type(self.rule) is cls), 'meta_lstm')
    return config_lib.ExperimentConfig(
        data=config_lib.DataConfig(dataset=dataset,
                                   image_size=learner.image_size,
                                   channels=learner.channels),
        episode=config_lib.EpisodeConfig(num_ways=learner.num_ways),
        learner=learner_config,
        meta_learner=config_lib.MetaLearnerConfig(update_rule=update_rule),
        inner_loop=self.inner_config).validate()

  def export(self, export_base: str, dataset: str = 'omniglot',
             limits=None) -> str:
    """Writes the adapt-and-classify SavedModel (the CLI's, TF Serving
    ready) as the next version under `export_base`; returns its path."""
    from meta_lstm_tf.serving import export as export_lib  # Heavy; lazily.
    return export_lib.export_adapt_and_classify(
        self.rule, self.experiment_config(dataset), export_base,
        limits=limits)

  def get_config(self):
    base = super().get_config()
    base.update({
        'learner': keras.saving.serialize_keras_object(self.learner_model)
                   if self.learner_model is not None
                   else dict(self.rule.learner_config.__dict__),
        'rule': self._rule_name or 'meta_lstm',
        'inner_steps': self.inner_config.inner_steps,
        'second_order': self.inner_config.second_order,
        'transductive': self.inner_config.transductive,
        'train_query_stats': self.inner_config.train_query_stats,
        'bn_momentum': self.inner_config.bn_momentum,
        'conv_dtype': self.inner_config.conv_dtype,
        'head_init': self.inner_config.head_init,
        'seed': self._seed, 'rule_kwargs': self._rule_kwargs})
    return base

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    learner = config.pop('learner')
    if isinstance(learner, dict) and 'class_name' in learner:
      learner = keras.saving.deserialize_keras_object(learner)
    else:
      learner = config_lib.LearnerConfig(**learner)
    return cls(learner, **config)
