"""Exporting the meta-learner as SavedModels for TensorFlow Serving.

Two SavedModels, each written to `EXPORT_BASE/<version>/` (integer versions,
as TF Serving expects; a version directory appears only once complete):

  adapt-and-classify  The meta-learned system: the learned initial learner
      parameters theta_0 and the meta-LSTM. Each request carries an episode
      (support images and labels, query images); the graph adapts the learner
      with T meta-LSTM steps and classifies the queries, through
      `train_steps.adapt_and_classify(..., training=False)`, the function
      evaluation calls (`inner_loop.adapt`, the one inner loop). T, N and the
      batch-norm settings are those of training.
        serving_default  support_images float32 [S, H, W, C],
                         support_labels int32 [S], query_images float32
                         [Q, H, W, C] -> logits [Q, N], probabilities [Q, N],
                         classes int32 [Q].
        encoded_images   the same with support_images / query_images string
                         [S] / [Q], encoded PNG/JPEG bytes (REST
                         clients send them as {"b64": ...}).
  adapted learner  The learner adapted once to a fixed support set, a plain
      classifier:
        serving_default  images float32 [B, H, W, C] -> probabilities [B, N],
                         classes int32 [B], class_names string [B].
        encoded_images   images string [B] -> the same.

Images are natural images as clients have them: values in [0, 1] (or
encoded files), grayscale or RGB, any size; for an Omniglot model white
background and dark strokes, for a photograph model (mini-ImageNet, image
folders) photographs, converted to the channels it was trained on (RGB for
mini-ImageNet; `metadata['channels']`). Preprocessing
(`image_ops.preprocess_images` / `decode_images`, the functions the training
pipeline uses) runs inside the graph, so the learner sees exactly what it saw
in training. Inputs are validated in the graph: a bad request fails with
`InvalidArgument` naming the input, and the model keeps serving. Only standard
TensorFlow ops are used (no `PyFunc`), so the C++ loader of TF Serving and
`saved_model_cli` load the models.

Shape glossary:
  S: support images (any number of shots per class); Q: query images;
  B: images to classify; N: ways, fixed at training;
  H, W, C: input image height, width and channels (C in {1, 3});
  I: the learner's image side (`LearnerConfig.image_size`);
  P: learner coordinates; T: inner steps.
"""

import functools
import json
import os
import shutil
import tempfile
import time
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf import train_steps
from meta_lstm_tf import types
from meta_lstm_tf import rules
from meta_lstm_tf import workdir as workdir_lib
from meta_lstm_tf.data import image_ops

SERVING_DEFAULT = 'serving_default'
ENCODED_SIGNATURE = 'encoded_images'
ADAPT_AND_CLASSIFY = 'adapt_and_classify'
ADAPTED_LEARNER = 'adapted_learner'
MODELS = (ADAPT_AND_CLASSIFY, ADAPTED_LEARNER)
# Default export bases under a training workdir. They differ because TF
# Serving treats every integer subdirectory of a base as a version of ONE
# model.
ADAPTED_LEARNER_EXPORT_DIR = 'export_adapted_learner'
# Written next to the SavedModel (TF Serving ignores `assets.extra/` except
# for warm-up requests).
METADATA_FILE = os.path.join('assets.extra', 'meta_lstm_export.json')
# What `image_ops.decode_images` (grayscale decoding) reads.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')

_FLOAT_IMAGES = tf.TensorSpec(None, tf.float32)
_ENCODED_IMAGES = tf.TensorSpec(None, tf.string)
_LABELS = tf.TensorSpec(None, tf.int32)

Images = Union[np.ndarray, tf.Tensor, Sequence[np.ndarray]]


# --------------------------------------------------------------------------
# In-graph input validation.


# Why the checks look the way they do: Grappler infers shapes backwards from
# consumers (a conv demands rank 4, so an unknown-rank input "is" rank 4),
# folds `Rank(x)` with that guess and drops the now "always true" assertion;
# the conv then runs on a rank-3 tensor (with oneDNN a CHECK failure that
# kills the server). So (1) shapes and ranks are checked on `tf.shape(x)`
# padded to a fixed length, never with `tf.rank` / `assert_rank`; (2) what
# the model computes with is `reshape(x, padded_shape)`, whose static rank
# comes from the shape vector's length, not from `x`; (3) nothing is computed
# from the raw input outside the checks (values are checked on the flattened
# tensor), and everything downstream is gated on the checks.


def _gate(tensor: tf.Tensor, checks) -> tf.Tensor:
  """`tensor`, computed only after `checks` passed."""
  with tf.control_dependencies(checks):
    return tf.identity(tensor)


def _checked_shape(tensor: tf.Tensor, rank: int, name: str, expected: str):
  """Asserts the rank of `tensor`; returns (gated tensor, shape int32 [rank]).

  The returned shape is `tf.shape(tensor)` padded with ones (or cut) to
  length `rank`, so it has a static length even for a bad request.
  """
  shape = tf.shape(tensor)
  actual_rank = tf.size(shape)
  check = tf.debugging.Assert(
      tf.equal(actual_rank, rank),
      [f'{name}: expected {expected}; got a tensor of shape', shape])
  tensor = _gate(tensor, [check])
  padded = tf.concat([_gate(shape, [check]), tf.ones([rank], tf.int32)],
                     axis=0)
  # Stacked scalars: a length known to every shape inference.
  return tensor, tf.stack([padded[i] for i in range(rank)])


def _validated_images(images: tf.Tensor, name: str) -> tf.Tensor:
  """Checks float images [X, H, W, C]: rank, not empty, C in {1, 3}, [0, 1].

  Returns:
    `images` reshaped to static rank 4, computed only if the checks pass.
  """
  images, shape = _checked_shape(
      images, 4, name, 'a float32 batch of images [num_images, height, width, '
      'channels]')
  values = tf.reshape(images, [-1])
  # Empty images give +inf / -inf, which pass; NaN fails.
  low, high = tf.reduce_min(values), tf.reduce_max(values)
  checks = [
      tf.debugging.Assert(
          shape[0] > 0, [f'{name}: is empty; send at least one image']),
      tf.debugging.Assert(
          shape[1] * shape[2] > 0,
          [f'{name}: images have zero height or width; shape', shape]),
      tf.debugging.Assert(
          tf.logical_or(tf.equal(shape[3], 1), tf.equal(shape[3], 3)),
          [f'{name}: images must have 1 (gray) or 3 (RGB) channels; got',
           shape[3]]),
      tf.debugging.Assert(
          (low >= 0.0) & (high <= 1.0),
          [f'{name}: pixel values must be in [0, 1] (white background, '
           'dark strokes); got min and max', low, high]),
  ]
  return tf.reshape(_gate(images, checks), _gate(shape, checks))


def _validated_encoded(images: tf.Tensor, name: str) -> tf.Tensor:
  """Checks encoded images string [X]: rank 1, not empty."""
  images, shape = _checked_shape(
      images, 1, name, 'a vector of encoded images (PNG/JPEG bytes)')
  values = tf.reshape(images, [-1])
  checks = [
      tf.debugging.Assert(
          shape[0] > 0, [f'{name}: is empty; send at least one image']),
      tf.debugging.Assert(
          tf.reduce_all(_is_image_file(values)),
          [f'{name}: every entry must be PNG or JPEG file bytes; not at '
           'positions',
           tf.where(tf.logical_not(_is_image_file(values)))[:, 0]]),
  ]
  return tf.reshape(_gate(images, checks), _gate(shape, checks))


def _is_image_file(encoded: tf.Tensor) -> tf.Tensor:
  """bool [X]: whether each string starts like a PNG or JPEG file."""
  # Padded so that substr never reads past the end of a short string.
  padded = tf.strings.join([encoded, b'\0' * 8])
  return ((tf.strings.substr(padded, 0, 8) == b'\x89PNG\r\n\x1a\n') |
          (tf.strings.substr(padded, 0, 3) == b'\xff\xd8\xff'))


def _validated_labels(labels: tf.Tensor, num_support: tf.Tensor,
                      num_ways: int) -> tf.Tensor:
  """Checks support_labels int32 [S]: rank 1, one per image, in [0, N)."""
  labels, shape = _checked_shape(
      labels, 1, 'support_labels',
      'an int32 vector [S], one label per support image')
  values = tf.reshape(labels, [-1])
  checks = [
      tf.debugging.Assert(
          tf.equal(shape[0], num_support),
          ['support_labels: need one label per image of support_images; got '
           'this many labels and images:', shape[0], num_support]),
      tf.debugging.Assert(
          tf.reduce_all((values >= 0) & (values < num_ways)),
          [f'support_labels: labels must be in [0, {num_ways}) (the model is '
           f'{num_ways}-way); got', values], summarize=64),
  ]
  return tf.reshape(_gate(labels, checks), _gate(shape, checks))


# --------------------------------------------------------------------------
# SavedModel 1: adapt-and-classify.


class AdaptAndClassifyModule(tf.Module):
  """The meta-learned few-shot classifier as a servable `tf.Module`.

  Holds the layer's variables (meta-LSTM weights and theta_0); its functions
  call `train_steps.adapt_and_classify(..., training=False)`, as evaluation
  does.
  """

  def __init__(self, layer: rules.UpdateRule,
               config: config_lib.ExperimentConfig):
    super().__init__(name=ADAPT_AND_CLASSIFY)
    _check_exportable(layer, config)
    # The tf.Variables inside the Keras variables, by name: the graph captures
    # those, and only tracked ones are restored by the TF1 / C++ loader (TF
    # Serving, `saved_model_cli run`). The layer itself is not tracked, so
    # each value is saved once.
    self.meta_lstm_variables = {v.name: _tf_variable(v)
                                for v in layer.variables}
    # A partial, not the layer: tf.Module would track the layer and save
    # every value twice.
    self._evaluate = functools.partial(train_steps.adapt_and_classify, layer)
    self.inner_config = config.inner_loop
    self.learner_config = layer.learner_config
    self.num_ways = layer.learner_config.num_ways
    self.image_size = layer.learner_config.image_size
    self.channels = layer.learner_config.channels
    self.invert = config.data.inverted
    self.classify = tf.function(
        self._classify, input_signature=[_FLOAT_IMAGES, _LABELS,
                                         _FLOAT_IMAGES])
    self.classify_encoded = tf.function(
        self._classify_encoded, input_signature=[_ENCODED_IMAGES, _LABELS,
                                                 _ENCODED_IMAGES])

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

  def _decode(self, images: tf.Tensor) -> tf.Tensor:
    return image_ops.decode_images(images, self.image_size, self.channels,
                                   self.invert)

  def _classify(self, support_images, support_labels, query_images):
    support_images = _validated_images(support_images, 'support_images')
    query_images = _validated_images(query_images, 'query_images')
    support_labels = _validated_labels(
        support_labels, tf.shape(support_images)[0], self.num_ways)
    return self._outputs(self._preprocess(support_images), support_labels,
                         self._preprocess(query_images))

  def _classify_encoded(self, support_images, support_labels, query_images):
    support_images = _validated_encoded(support_images, 'support_images')
    query_images = _validated_encoded(query_images, 'query_images')
    support_labels = _validated_labels(
        support_labels, tf.size(support_images), self.num_ways)
    return self._outputs(self._decode(support_images), support_labels,
                         self._decode(query_images))

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        SERVING_DEFAULT: self.classify.get_concrete_function(),
        ENCODED_SIGNATURE: self.classify_encoded.get_concrete_function(),
    }


def _tf_variable(variable) -> tf.Variable:
  """The `tf.Variable` behind a Keras 3 variable (or the variable itself)."""
  inner = getattr(variable, 'value', variable)
  if not isinstance(inner, tf.Variable):
    raise TypeError(f'{variable!r} is not backed by a tf.Variable')
  return inner


def _check_exportable(layer: rules.UpdateRule,
                      config: config_lib.ExperimentConfig) -> None:
  config.validate()
  if layer.learner_config != config.learner:
    raise ValueError(f'the layer\'s learner config {layer.learner_config} differs '
                     f'from config.learner={config.learner}')


# --------------------------------------------------------------------------
# SavedModel 2: the adapted learner.


class AdaptedLearnerModule(tf.Module):
  """A learner adapted to one support set, as a plain classifier."""

  def __init__(self, result: types.AdaptationResult,
               learner_config: config_lib.LearnerConfig, transductive: bool,
               class_names: Sequence[str], invert: bool = True):
    super().__init__(name=ADAPTED_LEARNER)
    self.learner_config = learner_config
    self.invert = invert
    # As evaluation (`train_steps.adapt_and_classify(training=False)`):
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
                                input_signature=[_FLOAT_IMAGES])
    self.classify_encoded = tf.function(self._classify_encoded,
                                        input_signature=[_ENCODED_IMAGES])

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
        use_support_stats=self.use_support_stats)
    classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {
        'probabilities': tf.nn.softmax(logits),
        'classes': classes,
        'class_names': tf.gather(self.class_names, classes),
    }

  def _classify(self, images):
    images = _validated_images(images, 'images')
    return self._outputs(image_ops.preprocess_images(
        images, self.image_size, self.learner_config.channels, self.invert))

  def _classify_encoded(self, images):
    images = _validated_encoded(images, 'images')
    return self._outputs(image_ops.decode_images(
        images, self.image_size, self.learner_config.channels, self.invert))

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        SERVING_DEFAULT: self.classify.get_concrete_function(),
        ENCODED_SIGNATURE: self.classify_encoded.get_concrete_function(),
    }


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


def make_adapted_learner(layer: rules.UpdateRule,
                         config: config_lib.ExperimentConfig,
                         support_images: Images, support_labels,
                         class_names: Sequence[str]) -> AdaptedLearnerModule:
  """Adapts once to a support set and wraps the result for serving.

  Args:
    layer: the trained meta-learner.
    config: its experiment config (T, batch-norm mode).
    support_images: natural images (see `preprocess_support`).
    support_labels: int [S] in [0, N).
    class_names: N names; class j is `class_names[j]`.

  Returns:
    An `AdaptedLearnerModule`.

  Raises:
    ValueError: wrong number of class names, labels or images.
  """
  serving = AdaptAndClassifyModule(layer, config)
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
  inputs = preprocess_support(support_images, serving.image_size,
                              serving.channels, serving.invert)
  if inputs.shape[0] != labels.size:
    raise ValueError(f'{inputs.shape[0]} support images but {labels.size} '
                     'support_labels')
  # The support set doubles as the query set: only the adaptation is kept.
  _, result = tf.function(serving.adapt_and_classify)(
      inputs, tf.constant(labels, tf.int32), inputs)
  return AdaptedLearnerModule(result, serving.learner_config,
                              config.inner_loop.transductive, class_names,
                              invert=serving.invert)


# --------------------------------------------------------------------------
# Versioned export.


def next_version(export_base: str) -> int:
  """1 + the largest integer version under `export_base` (1 if none)."""
  if not os.path.isdir(export_base):
    return 1
  versions = [int(name) for name in os.listdir(export_base)
              if name.isdigit()]
  return max(versions, default=0) + 1


def _save_versioned(module: tf.Module, signatures, export_base: str,
                    metadata: dict) -> str:
  """Saves into a hidden temporary directory, then renames it to the next
  version, so TF Serving never sees a half-written version."""
  os.makedirs(export_base, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.tmp-export-', dir=export_base)
  try:
    # mkdtemp makes it private; the server may run as another user.
    os.chmod(tmp, 0o755)
    tf.saved_model.save(module, tmp, signatures=signatures)
    workdir_lib.write_json(os.path.join(tmp, METADATA_FILE), metadata)
    while True:
      target = os.path.join(export_base, str(next_version(export_base)))
      try:
        os.rename(tmp, target)
        return target
      except OSError:
        # A concurrent export took this version; take the next one.
        if not os.path.exists(target):
          raise
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


def _metadata(model: str, config: config_lib.ExperimentConfig,
              **extra) -> dict:
  return dict(model=model, num_ways=config.learner.num_ways,
              image_size=config.learner.image_size,
              channels=config.learner.channels, dataset=config.data.dataset,
              inner_steps=config.inner_loop.inner_steps,
              signatures=[SERVING_DEFAULT, ENCODED_SIGNATURE],
              config=config.to_dict(), **extra)


def export_adapt_and_classify(layer: rules.UpdateRule,
                              config: config_lib.ExperimentConfig,
                              export_base: str) -> str:
  """Writes the adapt-and-classify SavedModel as the next version.

  Args:
    layer: the trained meta-learner.
    config: its experiment config.
    export_base: the model's base directory (e.g. WORKDIR/export).

  Returns:
    The path of the new version, `export_base/<version>`.
  """
  module = AdaptAndClassifyModule(layer, config)
  return _save_versioned(module, module.signatures(), export_base,
                         _metadata(ADAPT_AND_CLASSIFY, config))


def export_adapted_learner(layer: rules.UpdateRule,
                           config: config_lib.ExperimentConfig,
                           support_images: Images, support_labels,
                           class_names: Sequence[str],
                           export_base: str) -> str:
  """Adapts once to a support set and writes the adapted learner.

  Args: as `make_adapted_learner`, plus `export_base`, the model's base
    directory.

  Returns:
    The path of the new version, `export_base/<version>`.
  """
  module = make_adapted_learner(layer, config, support_images, support_labels,
                                class_names)
  return _save_versioned(
      module, module.signatures(), export_base,
      _metadata(ADAPTED_LEARNER, config, class_names=list(
          module.class_names.numpy().astype(str))))


class ExportArgumentError(ValueError):
  """A bad argument of `export_from_workdir`; `argument` names it."""

  def __init__(self, argument: str, value, message: str):
    super().__init__(f'{argument}={value!r}: {message}')
    self.argument = argument


def default_export_dir(workdir: str, model: str) -> str:
  """WORKDIR/export for adapt-and-classify, WORKDIR/export_adapted_learner
  for the adapted learner (one TF Serving model base each)."""
  name = (workdir_lib.EXPORT_DIR if model == ADAPT_AND_CLASSIFY
          else ADAPTED_LEARNER_EXPORT_DIR)
  return os.path.join(workdir, name)


def export_from_workdir(workdir: str, model: str = ADAPT_AND_CLASSIFY, *,
                        checkpoint: Optional[str] = None,
                        export_dir: Optional[str] = None,
                        support_dir: Optional[str] = None) -> str:
  """Restores a training run and exports one of the two SavedModels.

  Args:
    workdir: the training workdir (its config and checkpoints).
    model: `ADAPT_AND_CLASSIFY` or `ADAPTED_LEARNER`.
    checkpoint: a checkpoint prefix; default the best, else the latest one.
    export_dir: the model base; default `default_export_dir(workdir, model)`.
    support_dir: for `ADAPTED_LEARNER`, one subfolder of images per class
      (`load_support_folder`).

  Returns:
    The path of the new version.

  Raises:
    ExportArgumentError: a bad argument, named in `.argument`.
  """
  if model not in MODELS:
    raise ExportArgumentError('model', model, f'must be one of {MODELS}')
  if not workdir or not os.path.isdir(workdir):
    raise ExportArgumentError('workdir', workdir,
                              'is not a directory (a training workdir)')
  if not os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
    raise ExportArgumentError(
        'workdir', workdir, f'has no {workdir_lib.CONFIG_FILE}: not a '
        'training workdir')
  if model == ADAPTED_LEARNER and not support_dir:
    raise ExportArgumentError('support_dir', support_dir,
                              f'is required for model={ADAPTED_LEARNER}')
  if model == ADAPT_AND_CLASSIFY and support_dir:
    raise ExportArgumentError('support_dir', support_dir,
                              f'only applies to model={ADAPTED_LEARNER}')
  if checkpoint is not None:
    _check_checkpoint(checkpoint)
  try:
    layer, config, restored = workdir_lib.restore_rule(workdir, checkpoint)
  except FileNotFoundError as e:
    raise ExportArgumentError('workdir', workdir, str(e)) from e
  if checkpoint is None:
    _check_checkpoint(restored)
  export_dir = export_dir or default_export_dir(workdir, model)
  if model == ADAPT_AND_CLASSIFY:
    return export_adapt_and_classify(layer, config, export_dir)
  try:
    images, labels, class_names = load_support_folder(
        support_dir, channels=config.learner.channels)
  except ValueError as e:
    raise ExportArgumentError('support_dir', support_dir, str(e)) from e
  if len(class_names) != config.learner.num_ways:
    raise ExportArgumentError(
        'support_dir', support_dir,
        f'has {len(class_names)} class folders; the model is '
        f'{config.learner.num_ways}-way')
  return export_adapted_learner(layer, config, images, labels, class_names,
                                export_dir)


def _check_checkpoint(prefix: str) -> None:
  """Raises unless `prefix` is a checkpoint holding the meta-learner."""
  try:
    keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
          ValueError) as e:
    raise ExportArgumentError('checkpoint', prefix,
                              'is not a readable checkpoint prefix') from e
  # `restore_rule` restores partially; make sure there was a rule to read.
  if not any(key.startswith('layer/') for key in keys):
    raise ExportArgumentError('checkpoint', prefix,
                              'holds no meta-learner (no layer/ variables)')


# --------------------------------------------------------------------------
# Support sets from image folders.


def load_support_folder(path: str, channels: int = 1
                        ) -> Tuple[Images, np.ndarray, List[str]]:
  """Reads a support set stored as one subfolder of images per class.

  Classes are the subfolder names in sorted order; label j is the j-th.

  Args:
    path: a directory `path/CLASS_NAME/*.png|jpg|jpeg`.
    channels: ch, 1 (grayscale) or 3 (RGB); images are converted.

  Returns:
    (images, labels int32 [S], class names [N]). `images` are natural
    images in [0, 1]: float32 [S, H, W, ch] when all have the same size,
    else a list of [H_i, W_i, ch] arrays (both accepted by
    `export_adapted_learner`).

  Raises:
    ValueError: no class folder, a class without images, or an unreadable
      image, naming it.
  """
  if not os.path.isdir(path):
    raise ValueError(f'support folder {path!r} does not exist')
  class_names = sorted(name for name in os.listdir(path)
                       if os.path.isdir(os.path.join(path, name)) and
                       not name.startswith('.'))
  if not class_names:
    raise ValueError(f'support folder {path!r} has no class subfolder')
  images, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(path, name)
    files = sorted(f for f in os.listdir(class_dir)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise ValueError(f'class folder {class_dir!r} has no image '
                       f'({", ".join(IMAGE_EXTENSIONS)})')
    for filename in files:
      images.append(_read_image(os.path.join(class_dir, filename), channels))
      labels.append(label)
  if len({image.shape for image in images}) == 1:
    images = np.stack(images)
  return images, np.asarray(labels, np.int32), class_names


def _read_image(path: str, channels: int = 1) -> np.ndarray:
  """Image file -> float32 [H, W, ch] in [0, 1], natural convention."""
  with open(path, 'rb') as f:
    return _decode_gray(f.read(), path, channels)


def _decode_gray(encoded: bytes, where: str, channels: int = 1) -> np.ndarray:
  try:
    image = tf.io.decode_image(encoded, channels=channels,
                               expand_animations=False)
  except tf.errors.InvalidArgumentError as e:
    raise ValueError(f'cannot decode image {where!r}: {e.message}') from e
  return image.numpy().astype(np.float32) / 255.0


# --------------------------------------------------------------------------
# Raw Omniglot episodes and the serving latency benchmark.


def _omniglot_characters(omniglot_dir: str):
  """Evaluation-set characters of a local Omniglot copy, as raw PNG bytes.

  Reads the extracted `images_evaluation/` folder, else
  `images_evaluation.zip`.

  Returns:
    A list, one entry per character, of lists of PNG bytes loaders.
  """
  folder = os.path.join(omniglot_dir, 'images_evaluation')
  if os.path.isdir(folder):
    characters = []
    for alphabet in sorted(os.listdir(folder)):
      alphabet_dir = os.path.join(folder, alphabet)
      if not os.path.isdir(alphabet_dir):
        continue
      for character in sorted(os.listdir(alphabet_dir)):
        char_dir = os.path.join(alphabet_dir, character)
        files = sorted(os.path.join(char_dir, f) for f in os.listdir(char_dir)
                       if f.endswith('.png'))
        if files:
          characters.append([_file_loader(f) for f in files])
    if characters:
      return characters
  archive = os.path.join(omniglot_dir, 'images_evaluation.zip')
  if os.path.isfile(archive):
    with zipfile.ZipFile(archive) as zf:
      groups = {}
      for name in sorted(zf.namelist()):
        if name.endswith('.png'):
          groups.setdefault(os.path.dirname(name), []).append(name)
      return [[_zip_loader(archive, n) for n in names]
              for _, names in sorted(groups.items())]
  raise FileNotFoundError(f'no images_evaluation folder or archive in '
                          f'{omniglot_dir!r}')


def _file_loader(path):
  def load():
    with open(path, 'rb') as f:
      return f.read()
  return load


def _zip_loader(archive, name):
  def load():
    with zipfile.ZipFile(archive) as zf:
      return zf.read(name)
  return load


def sample_raw_episode(omniglot_dir: Optional[str],
                       episode_config: config_lib.EpisodeConfig,
                       seed: int = 0, image_side: int = 105,
                       encoded: bool = False):
  """An episode of raw images as a serving client would send it.

  The training pipeline (`data.episodes`) holds images already preprocessed
  for the learner; the served model takes natural images. This reads the
  original PNGs of Omniglot's evaluation set (or, with `omniglot_dir=None`,
  makes random images: latency does not depend on content).

  Args:
    omniglot_dir: local Omniglot copy, or None for synthetic images.
    episode_config: N, K, Q.
    seed: NumPy seed for the classes and drawings.
    image_side: side of the synthetic images.
    encoded: return PNG bytes instead of decoded images (Omniglot only).

  Returns:
    `types.Episode` of NumPy arrays: images float32 [X, H, W, 1] in [0, 1]
    (white background) or, if `encoded`, object arrays of PNG bytes; labels
    int32.
  """
  rng = np.random.default_rng(seed)
  n, k, q = (episode_config.num_ways, episode_config.num_shots,
             episode_config.num_queries)
  support_labels = np.repeat(np.arange(n, dtype=np.int32), k)
  query_labels = np.repeat(np.arange(n, dtype=np.int32), q)
  if omniglot_dir is None:
    if encoded:
      raise ValueError('encoded=True needs omniglot_dir')
    return types.Episode(
        rng.random((n * k, image_side, image_side, 1), np.float32),
        support_labels,
        rng.random((n * q, image_side, image_side, 1), np.float32),
        query_labels)
  characters = _omniglot_characters(omniglot_dir)
  chosen = rng.choice(len(characters), size=n, replace=False)
  support, query = [], []
  for index in chosen:
    loaders = characters[index]
    drawings = rng.choice(len(loaders), size=k + q, replace=False)
    data = [loaders[d]() for d in drawings]
    support.extend(data[:k])
    query.extend(data[k:])
  if encoded:
    return types.Episode(np.array(support, object), support_labels,
                         np.array(query, object), query_labels)
  decode = lambda items: np.stack([_decode_gray(b, 'omniglot') for b in items])
  return types.Episode(decode(support), support_labels, decode(query),
                       query_labels)


def _time_calls(fn, episodes, num_calls: int, warmup: int) -> np.ndarray:
  """Latencies in ms of `num_calls` calls, cycling through `episodes`."""
  for i in range(warmup):
    fn(**episodes[i % len(episodes)])['classes'].numpy()
  latencies = []
  for i in range(num_calls):
    inputs = episodes[i % len(episodes)]
    start = time.perf_counter()
    fn(**inputs)['classes'].numpy()
    latencies.append((time.perf_counter() - start) * 1e3)
  return np.asarray(latencies)


def serving_latency_benchmark(omniglot_dir: Optional[str] = None,
                              num_calls: int = 60, warmup: int = 5,
                              num_episodes: int = 10,
                              inner_steps: int = 8,
                              meta_learner: Optional[
                                  config_lib.MetaLearnerConfig] = None
                              ) -> Dict[str, float]:
  """Latency of adapt-and-classify through a loaded SavedModel.

  For 5-way and 20-way 1-shot with 15 queries per class, builds a fresh
  meta-learner with `meta_learner`'s settings (the latency does not depend
  on its weights), exports it, loads it with `tf.saved_model.load` and times
  `serving_default` calls (inputs already tensors; the time includes the
  in-graph validation and preprocessing of raw 105 x 105 images).

  Args:
    omniglot_dir: local Omniglot for real images, or None for random ones.
    num_calls: timed calls per setting (>= 50 for a meaningful p95).
    warmup: untimed calls first.
    num_episodes: distinct episodes cycled through.
    inner_steps: T of the exported model (latency grows linearly with it).
    meta_learner: the meta-learner's settings (default: the library's).

  Returns:
    `serving_latency_ms_p50_5w1s`, `serving_latency_ms_p95_5w1s`,
    `serving_latency_ms_p50_20w1s`, `serving_inner_steps`, and
    `serving_images` ('omniglot' or 'synthetic').
  """
  results = {}
  for num_ways in (5, 20):
    episode_config = config_lib.EpisodeConfig(num_ways=num_ways, num_shots=1,
                                              num_queries=15)
    config = config_lib.ExperimentConfig(
        episode=episode_config,
        learner=config_lib.LearnerConfig(num_ways=num_ways),
        meta_learner=meta_learner or config_lib.MetaLearnerConfig(),
        inner_loop=config_lib.InnerLoopConfig(
            inner_steps=inner_steps)).validate()
    layer = rules.make_rule(config)
    episodes = []
    for seed in range(num_episodes):
      episode = sample_raw_episode(omniglot_dir, episode_config, seed=seed)
      episodes.append({
          'support_images': tf.constant(episode.support_images),
          'support_labels': tf.constant(episode.support_labels),
          'query_images': tf.constant(episode.query_images)})
    with tempfile.TemporaryDirectory() as export_base:
      path = export_adapt_and_classify(layer, config, export_base)
      loaded = tf.saved_model.load(path)
      latencies = _time_calls(loaded.signatures[SERVING_DEFAULT], episodes,
                              num_calls, warmup)
    tag = f'{num_ways}w1s'
    results[f'serving_latency_ms_p50_{tag}'] = float(
        np.percentile(latencies, 50))
    if num_ways == 5:
      results[f'serving_latency_ms_p95_{tag}'] = float(
          np.percentile(latencies, 95))
    results['serving_inner_steps'] = config.inner_loop.inner_steps
  results['serving_images'] = 'omniglot' if omniglot_dir else 'synthetic'
  return results


def read_metadata(saved_model_dir: str) -> dict:
  """The export metadata written next to a SavedModel."""
  with open(os.path.join(saved_model_dir, METADATA_FILE)) as f:
    return json.load(f)
