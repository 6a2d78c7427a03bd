"""The two servable `tf.Module`s: adapt-and-classify and the adapted learner.

See the package docstring for their signatures. Shape glossary: S support
images, Q query images, B images to classify, N ways, H, W, C input images,
I the learner's image side, P learner coordinates, T inner steps.
"""

import dataclasses
import functools
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import rules
from meta_lstm_tf import types
from meta_lstm_tf.data import image_ops
from meta_lstm_tf.serving import decoding
from meta_lstm_tf.serving import validation

SERVING_DEFAULT = 'serving_default'
ENCODED_SIGNATURE = 'encoded_images'
ADAPT_AND_CLASSIFY = 'adapt_and_classify'
ADAPTED_LEARNER = 'adapted_learner'

Images = Union[np.ndarray, tf.Tensor, Sequence[np.ndarray]]


class AdaptAndClassifyModule(tf.Module):
  """The meta-learned few-shot classifier as a servable `tf.Module`.

  Holds the layer's variables (meta-LSTM weights and theta_0); its functions
  call `inner_loop.adapt_and_classify(..., training=False)`, as evaluation
  does. `conv_dtype` is the learner's conv precision in the SavedModel
  (`InnerLoopConfig.conv_dtype`), float32 by default whatever the run
  trained with: float32 runs on any CPU TF Serving meets; bfloat16 is faster
  on CPUs with AVX512-BF16 or AMX and slow on others. `limits` bound the
  requests it accepts (`validation.ServingLimits`).
  """

  def __init__(self, rule: rules.UpdateRule,
               config: config_lib.ExperimentConfig,
               conv_dtype: str = 'float32',
               limits: validation.ServingLimits = validation.ServingLimits()):
    super().__init__(name=ADAPT_AND_CLASSIFY)
    if conv_dtype not in config_lib.EXPORT_CONV_DTYPES:
      raise ValueError(f'conv_dtype={conv_dtype!r}: must be one of '
                       f'{config_lib.EXPORT_CONV_DTYPES} (a SavedModel\'s '
                       'precision is fixed when it is written)')
    _check_exportable(rule, config)
    self.limits = limits.validate()
    # The tf.Variables inside the Keras variables, by name: the graph captures
    # those, and only tracked ones are restored by the TF1 / C++ loader (TF
    # Serving, `saved_model_cli run`). The rule itself is not tracked, so
    # each value is saved once.
    self.meta_lstm_variables = {v.name: _tf_variable(v)
                                for v in rule.variables}
    # A Keras learner's own weights (its non-trainable ones are read).
    self.learner_variables = _learner_variables(rule.learner)
    # A partial, not the rule: tf.Module would track the rule and save
    # every value twice.
    self._evaluate = functools.partial(inner_loop.adapt_and_classify, rule)
    self.inner_config = dataclasses.replace(config.inner_loop,
                                            conv_dtype=conv_dtype)
    self.learner_config = rule.learner_config
    self.learner = rule.learner
    self.num_ways = rule.learner.num_ways
    self.image_size = rule.learner.image_size
    self.channels = rule.learner.channels
    self.invert = config.data.inverted
    self.classify = tf.function(
        self._classify, input_signature=[
            validation.FLOAT_IMAGES, validation.LABELS,
            validation.FLOAT_IMAGES])
    self.classify_encoded = tf.function(
        self._classify_encoded, input_signature=[
            validation.ENCODED_IMAGES, validation.LABELS,
            validation.ENCODED_IMAGES])

  def adapt_and_classify(self, support_inputs: tf.Tensor,
                         support_labels: tf.Tensor, query_inputs: tf.Tensor
                         ) -> Tuple[tf.Tensor, types.AdaptationResult]:
    """(logits [Q, N], adaptation result) from preprocessed inputs
    [X, I, I, 1] (no validation)."""
    return self._evaluate(support_inputs, support_labels, query_inputs,
                          self.inner_config, training=False)

  def logits(self, support_inputs: tf.Tensor, support_labels: tf.Tensor,
             query_inputs: tf.Tensor) -> tf.Tensor:
    """Logits [Q, N] from preprocessed inputs (no validation)."""
    return self.adapt_and_classify(support_inputs, support_labels,
                                   query_inputs)[0]

  def _outputs(self, support_inputs, support_labels, query_inputs):
    logits = self.logits(support_inputs, support_labels, query_inputs)
    return {
        'logits': logits,
        'probabilities': tf.nn.softmax(logits),
        'classes': tf.argmax(logits, axis=-1, output_type=tf.int32),
    }

  def _preprocess(self, images: tf.Tensor) -> tf.Tensor:
    # Static shape [X, I, I, ch]: `images` has static rank 4.
    return image_ops.preprocess_images(images, self.image_size, self.channels,
                                       self.invert)

  def _decode(self, images: tf.Tensor, name: str) -> tf.Tensor:
    return decoding.decode(images, name, self.image_size, self.channels,
                           self.invert)

  def _classify(self, support_images, support_labels, query_images):
    support_images = validation.validated_images(
        support_images, 'support_images', self.limits, 'max_support_images')
    query_images = validation.validated_images(
        query_images, 'query_images', self.limits, 'max_query_images')
    support_labels = validation.validated_labels(
        support_labels, tf.shape(support_images)[0], self.num_ways)
    # Nothing is preprocessed or adapted to until every input has passed.
    support_images, support_labels, query_images = (
        validation.after_one_another(support_images, support_labels,
                                     query_images))
    return self._outputs(self._preprocess(support_images), support_labels,
                         self._preprocess(query_images))

  def _classify_encoded(self, support_images, support_labels, query_images):
    support_images = validation.validated_encoded(
        support_images, 'support_images', self.limits, 'max_support_images')
    query_images = validation.validated_encoded(
        query_images, 'query_images', self.limits, 'max_query_images')
    support_labels = validation.validated_labels(
        support_labels, tf.size(support_images), self.num_ways)
    # Headers are read once counts and labels have passed; nothing is
    # decoded until every header has.
    support_images, support_labels, query_images = (
        validation.after_one_another(support_images, support_labels,
                                     query_images))
    support_images, query_images = validation.after_one_another(
        decoding.checked_sizes(support_images, 'support_images', self.limits),
        decoding.checked_sizes(query_images, 'query_images', self.limits))
    return self._outputs(self._decode(support_images, 'support_images'),
                         support_labels,
                         self._decode(query_images, 'query_images'))

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        SERVING_DEFAULT: self.classify.get_concrete_function(),
        ENCODED_SIGNATURE: self.classify_encoded.get_concrete_function(),
    }

  def warmup_inputs(self) -> Dict[str, Dict[str, np.ndarray]]:
    """{signature: inputs} of one valid request each, for TF Serving's
    warm-up (`warmup.py`): an N-way 1-shot episode with N queries (fewer
    if the limits say so) of small drawings at the learner's side; {} if
    the limits admit no N-way request."""
    if self.num_ways > self.limits.max_support_images:
      return {}
    images = _warmup_images(self.num_ways, self.image_size, self.channels)
    labels = np.arange(self.num_ways, dtype=np.int32)
    queries = images[:self.limits.max_query_images]
    return {
        SERVING_DEFAULT: dict(support_images=_as_float(images),
                              support_labels=labels,
                              query_images=_as_float(queries)),
        ENCODED_SIGNATURE: dict(support_images=_as_png(images),
                                support_labels=labels,
                                query_images=_as_png(queries)),
    }


def _warmup_images(count: int, side: int, channels: int) -> np.ndarray:
  """uint8 [count, side, side, channels]: white, a dark bar each."""
  images = np.full((count, side, side, channels), 255, np.uint8)
  for i, image in enumerate(images):
    row = (i * max(side // count, 1)) % side
    image[row:row + max(side // 8, 1), side // 8:side - side // 8] = 0
  return images


def _as_float(images: np.ndarray) -> np.ndarray:
  return images.astype(np.float32) / 255.0


def _as_png(images: np.ndarray) -> np.ndarray:
  return np.array([tf.io.encode_png(image).numpy() for image in images],
                  dtype=object)


def _tf_variable(variable) -> tf.Variable:
  """The `tf.Variable` behind a Keras 3 variable (or the variable itself)."""
  inner = getattr(variable, 'value', variable)
  if not isinstance(inner, tf.Variable):
    raise TypeError(f'{variable!r} is not backed by a tf.Variable')
  return inner


def _learner_variables(learner) -> Dict[str, tf.Variable]:
  return {f'{i}/{v.path}': _tf_variable(v)
          for i, v in enumerate(getattr(learner, 'variables', []))}


def _check_exportable(rule: rules.UpdateRule,
                      config: config_lib.ExperimentConfig) -> None:
  config.validate()
  if rule.learner_config is None:  # A Keras learner: its own shape.
    if (rule.learner.num_ways, rule.learner.image_size,
        rule.learner.channels) != (config.learner.num_ways,
                                   config.learner.image_size,
                                   config.learner.channels):
      raise ValueError(
          f'the learner is {rule.learner.num_ways}-way on '
          f'{rule.learner.image_size}x{rule.learner.image_size}x'
          f'{rule.learner.channels} images; config.learner says '
          f'{config.learner}')
    return
  if rule.learner_config != config.learner:
    raise ValueError(f'the rule\'s learner config {rule.learner_config} '
                     f'differs from config.learner={config.learner}')


class AdaptedLearnerModule(tf.Module):
  """A learner adapted to one support set, as a plain classifier.

  Its `images` count against `limits.max_query_images`.
  """

  def __init__(self, result: types.AdaptationResult,
               learner_config, transductive: bool,
               class_names: Sequence[str], invert: bool = True,
               limits: validation.ServingLimits = validation.ServingLimits()):
    super().__init__(name=ADAPTED_LEARNER)
    # A `LearnerConfig` or a `learners.Learner`.
    self.learner_config = learner_config
    self.learner_variables = _learner_variables(learner_config)
    self.invert = invert
    self.limits = limits.validate()
    # As evaluation (`inner_loop.adapt_and_classify(training=False)`):
    # the support statistics unless transductive.
    self.use_support_stats = not transductive
    self.image_size = learner_config.image_size
    self.params = tf.Variable(result.params, trainable=False,
                              name='adapted_params')
    self.bn_means = [tf.Variable(m, trainable=False, name=f'bn{i + 1}_mean')
                     for i, m in enumerate(result.bn_stats.means)]
    self.bn_variances = [
        tf.Variable(v, trainable=False, name=f'bn{i + 1}_variance')
        for i, v in enumerate(result.bn_stats.variances)]
    self.bn_count = tf.Variable(result.bn_stats.count, trainable=False,
                                name='bn_count')
    self.class_names = tf.Variable(tf.constant(list(class_names), tf.string),
                                   trainable=False, name='class_names')
    self.classify = tf.function(self._classify,
                                input_signature=[validation.FLOAT_IMAGES])
    self.classify_encoded = tf.function(
        self._classify_encoded, input_signature=[validation.ENCODED_IMAGES])

  def _result(self) -> types.AdaptationResult:
    stats = types.BatchNormStats(
        tuple(tf.convert_to_tensor(m) for m in self.bn_means),
        tuple(tf.convert_to_tensor(v) for v in self.bn_variances),
        tf.convert_to_tensor(self.bn_count))
    empty = tf.zeros([0])
    return types.AdaptationResult(
        params=tf.convert_to_tensor(self.params), bn_stats=stats,
        support_losses=empty, forget_gate_mean=empty, input_gate_mean=empty,
        forget_gates=empty, input_gates=empty)

  def _outputs(self, inputs: tf.Tensor):
    logits = inner_loop.query_logits(
        self._result(), inputs, self.learner_config,
        use_support_stats=self.use_support_stats, differentiated=False)
    classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {
        'probabilities': tf.nn.softmax(logits),
        'classes': classes,
        'class_names': tf.gather(self.class_names, classes),
    }

  def _classify(self, images):
    images = validation.validated_images(images, 'images', self.limits,
                                         'max_query_images')
    return self._outputs(image_ops.preprocess_images(
        images, self.image_size, self.learner_config.channels, self.invert))

  def _classify_encoded(self, images):
    images = validation.validated_encoded(images, 'images', self.limits,
                                          'max_query_images')
    images = decoding.checked_sizes(images, 'images', self.limits)
    return self._outputs(decoding.decode(
        images, 'images', self.image_size, self.learner_config.channels,
        self.invert))

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        SERVING_DEFAULT: self.classify.get_concrete_function(),
        ENCODED_SIGNATURE: self.classify_encoded.get_concrete_function(),
    }

  def warmup_inputs(self) -> Dict[str, Dict[str, np.ndarray]]:
    """{signature: inputs} of one valid request each, for TF Serving's
    warm-up (`warmup.py`): N small drawings (fewer if the limits say so)."""
    num_ways = int(self.class_names.shape[0])
    images = _warmup_images(num_ways, self.image_size,
                            self.learner_config.channels)
    images = images[:self.limits.max_query_images]
    return {SERVING_DEFAULT: dict(images=_as_float(images)),
            ENCODED_SIGNATURE: dict(images=_as_png(images))}


def preprocess_support(images: Images, image_size: int, channels: int = 1,
                       invert: bool = True) -> tf.Tensor:
  """Natural support images -> learner inputs float32 [S, I, I, ch].

  Args:
    images: float [S, H, W, C] in [0, 1] (or uint8), or a sequence of
      [H_i, W_i, C] images of different sizes.
    image_size: I.
    channels, invert: as `image_ops.preprocess_images`.
  """
  if isinstance(images, (list, tuple)):
    return tf.concat([image_ops.preprocess_images(
        tf.convert_to_tensor(image)[tf.newaxis], image_size, channels, invert)
                      for image in images], axis=0)
  return image_ops.preprocess_images(images, image_size, channels, invert)


def make_adapted_learner(rule: rules.UpdateRule,
                         config: config_lib.ExperimentConfig,
                         support_images: Images, support_labels,
                         class_names: Sequence[str],
                         limits: validation.ServingLimits = (
                             validation.ServingLimits())
                         ) -> AdaptedLearnerModule:
  """Adapts once to a support set and wraps the result for serving.

  Args:
    rule: the trained meta-learner.
    config: its experiment config (T, batch-norm mode).
    support_images: natural images (see `preprocess_support`).
    support_labels: int [S] in [0, N), every class present.
    class_names: N names; class j is `class_names[j]`.
    limits: what the adapted learner's signatures accept.

  Returns:
    An `AdaptedLearnerModule`.

  Raises:
    ValueError: wrong number of class names, labels or images, a class
      without support images, or bad `limits`.
  """
  serving = AdaptAndClassifyModule(rule, config)
  num_ways = serving.num_ways
  class_names = [str(name) for name in class_names]
  if len(class_names) != num_ways:
    raise ValueError(f'class_names has {len(class_names)} names; the model is '
                     f'{num_ways}-way')
  labels = np.asarray(support_labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'support_labels must be an integer vector; got shape '
                     f'{labels.shape}, dtype {labels.dtype}')
  if labels.size == 0 or labels.min() < 0 or labels.max() >= num_ways:
    raise ValueError(f'support_labels must be non-empty and in [0, {num_ways})')
  missing = sorted(set(range(num_ways)) - set(labels.tolist()))
  if missing:
    raise ValueError(f'support_labels: every class needs at least one support '
                     f'image; missing classes {missing}')
  inputs = preprocess_support(support_images, serving.image_size,
                              serving.channels, serving.invert)
  if inputs.shape[0] != labels.size:
    raise ValueError(f'{inputs.shape[0]} support images but {labels.size} '
                     'support_labels')
  # The support set doubles as the query set: only the adaptation is kept.
  _, result = tf.function(serving.adapt_and_classify)(
      inputs, tf.constant(labels, tf.int32), inputs)
  return AdaptedLearnerModule(result, serving.learner,
                              config.inner_loop.transductive, class_names,
                              invert=serving.invert, limits=limits)
