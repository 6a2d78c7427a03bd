"""Versioned export of the servable modules, from a rule or a workdir.

Each SavedModel goes to `EXPORT_BASE/<version>/` (integer versions, as TF
Serving expects), with its metadata in `assets.extra/`: among it the request
limits the graph enforces (`serving_limits`, `validation.ServingLimits`),
and TF Serving's warm-up requests, one per signature (`warmup.py`).
Everything is written through `tf.io.gfile`, so EXPORT_BASE may be on any
file system TensorFlow knows. A local version directory appears only once
complete (written under a temporary name beside it, then renamed); for
other file systems (`gs://...`), which rename directories object by object
if at all, the model is written to a local temporary directory and then
copied into the version directory, `saved_model.pb` last.
"""

import os
import shutil
import tempfile
from typing import Optional, Sequence
import uuid

from absl import logging
import tensorflow as tf

from meta_lstm_tf.training import checkpoints
from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.serving import modules
from meta_lstm_tf.serving import support
from meta_lstm_tf.serving import validation
from meta_lstm_tf.serving import warmup
from meta_lstm_tf.serving.modules import ADAPTED_LEARNER
from meta_lstm_tf.serving.modules import ADAPT_AND_CLASSIFY
from meta_lstm_tf.serving.modules import ENCODED_SIGNATURE
from meta_lstm_tf.serving.modules import SERVING_DEFAULT

MODELS = (ADAPT_AND_CLASSIFY, ADAPTED_LEARNER)
# Default export bases under a training workdir. They differ because TF
# Serving treats every integer subdirectory of a base as a version of ONE
# model.
ADAPTED_LEARNER_EXPORT_DIR = 'export_adapted_learner'
# Written next to the SavedModel (TF Serving ignores `assets.extra/` except
# for warm-up requests).
METADATA_FILE = os.path.join('assets.extra', 'meta_lstm_export.json')


def next_version(export_base: str) -> int:
  """1 + the largest integer version under `export_base` (1 if none)."""
  if not tf.io.gfile.isdir(export_base):
    return 1
  names = [name.rstrip('/') for name in tf.io.gfile.listdir(export_base)]
  versions = [int(name) for name in names if name.isdigit()]
  return max(versions, default=0) + 1


def _copy_tree(source: str, target: str) -> None:
  """Copies a finished SavedModel directory, saved_model.pb last (TF
  Serving loads a version once that file is there)."""
  if tf.io.gfile.exists(target):
    raise FileExistsError(target)
  last = []
  for directory, _, files in tf.io.gfile.walk(source):
    relative = os.path.relpath(directory, source)
    destination = (target if relative == '.'
                   else os.path.join(target, relative))
    tf.io.gfile.makedirs(destination)
    for name in files:
      pair = (os.path.join(directory, name), os.path.join(destination, name))
      if relative == '.' and name == 'saved_model.pb':
        last.append(pair)
      else:
        tf.io.gfile.copy(*pair)
  for pair in last:
    tf.io.gfile.copy(*pair)


# Versions a concurrent export may take before this one gives up.
_VERSION_ATTEMPTS = 100


def _save_versioned(module: tf.Module, signatures, export_base: str,
                    metadata: dict) -> str:
  """Saves into a temporary directory, with the metadata and one warm-up
  request per signature (`module.warmup_inputs()`, `warmup.py`) in
  assets.extra/, then moves it to the next version (a rename on local
  disks: TF Serving never sees a half-written version; a copy to other file
  systems, see the module docstring)."""
  tf.io.gfile.makedirs(export_base)
  local = workdir_lib.is_local(export_base)
  tmp = (os.path.join(export_base, f'.tmp-export-{uuid.uuid4().hex}')
         if local else tempfile.mkdtemp(prefix='meta_lstm_tf-export-'))
  try:
    tf.saved_model.save(module, tmp, signatures=signatures)
    workdir_lib.write_json(os.path.join(tmp, METADATA_FILE), metadata)
    requests = module.warmup_inputs()
    if requests:
      warmup.write_warmup_requests(tmp, requests)
    for _ in range(_VERSION_ATTEMPTS):
      target = os.path.join(export_base, str(next_version(export_base)))
      try:
        if local:
          tf.io.gfile.rename(tmp, target)
        else:
          _copy_tree(tmp, target)
        return target
      except FileExistsError:
        continue  # A concurrent export took this version: the next one.
      except (OSError, tf.errors.OpError):
        if local and tf.io.gfile.exists(target):
          continue  # Likewise, seen by the rename.
        raise
    raise FileExistsError(f'{export_base}: every version up to {target} was '
                          'taken while exporting')
  finally:
    try:
      if local and tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    except tf.errors.OpError as e:  # Left for `remove_stale_exports`.
      logging.warning('Could not remove %s: %s', tmp, e)
    if not local:
      shutil.rmtree(tmp, ignore_errors=True)


def _metadata(model: str, config: config_lib.ExperimentConfig,
              limits: validation.ServingLimits, **extra) -> dict:
  return dict(model=model, num_ways=config.learner.num_ways,
              image_size=config.learner.image_size,
              channels=config.learner.channels, dataset=config.data.dataset,
              inner_steps=config.inner_loop.inner_steps,
              signatures=[SERVING_DEFAULT, ENCODED_SIGNATURE],
              serving_limits=limits.to_dict(), config=config.to_dict(),
              **extra)


def export_adapt_and_classify(
    rule: rules.UpdateRule, config: config_lib.ExperimentConfig,
    export_base: str, conv_dtype: str = 'float32',
    limits: Optional[validation.ServingLimits] = None) -> str:
  """Writes the adapt-and-classify SavedModel as the next version.

  Args:
    rule: the trained meta-learner.
    config: its experiment config.
    export_base: the model's base directory (e.g. WORKDIR/export).
    conv_dtype: the learner's conv precision in the SavedModel (see
      `modules.AdaptAndClassifyModule`); recorded in its metadata.
    limits: the largest requests it accepts (default
      `validation.ServingLimits()`); recorded in its metadata.

  Returns:
    The path of the new version, `export_base/<version>`.

  Raises:
    validation.LimitError: a bad `limits` field.
  """
  limits = (limits or validation.ServingLimits()).validate()
  module = modules.AdaptAndClassifyModule(rule, config, conv_dtype, limits)
  return _save_versioned(module, module.signatures(), export_base,
                         _metadata(ADAPT_AND_CLASSIFY, config, limits,
                                   conv_dtype=conv_dtype))


def export_adapted_learner(
    rule: rules.UpdateRule, config: config_lib.ExperimentConfig,
    support_images: modules.Images, support_labels,
    class_names: Sequence[str], export_base: str,
    limits: Optional[validation.ServingLimits] = None) -> str:
  """Adapts once to a support set and writes the adapted learner.

  Args: as `modules.make_adapted_learner`, plus `export_base`, the model's base
    directory, and `limits` as `export_adapt_and_classify`.

  Returns:
    The path of the new version, `export_base/<version>`.
  """
  limits = (limits or validation.ServingLimits()).validate()
  module = modules.make_adapted_learner(rule, config, support_images,
                                        support_labels, class_names, limits)
  return _save_versioned(
      module, module.signatures(), export_base,
      _metadata(ADAPTED_LEARNER, config, limits, class_names=list(
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
                        support_dir: Optional[str] = None,
                        conv_dtype: str = 'float32',
                        limits: Optional[validation.ServingLimits] = None
                        ) -> str:
  """Restores a training run and exports one of the two SavedModels.

  Args:
    workdir: the training workdir (its config and checkpoints).
    model: `ADAPT_AND_CLASSIFY` or `ADAPTED_LEARNER`.
    checkpoint: a checkpoint prefix; default the best, else the latest one.
    export_dir: the model base; default `default_export_dir(workdir, model)`.
    support_dir: for `ADAPTED_LEARNER`, one subfolder of images per class
      (`support.load_support_folder`).
    conv_dtype: for `ADAPT_AND_CLASSIFY`, the learner's conv precision in
      the SavedModel (`export_adapt_and_classify`).
    limits: the largest requests the SavedModel accepts (default
      `validation.ServingLimits()`); a bad field is reported by its name.

  Returns:
    The path of the new version.

  Raises:
    ExportArgumentError: a bad argument, named in `.argument`.
  """
  if model not in MODELS:
    raise ExportArgumentError('model', model, f'must be one of {MODELS}')
  if not workdir or not tf.io.gfile.isdir(workdir):
    raise ExportArgumentError('workdir', workdir,
                              'is not a directory (a training workdir)')
  if not tf.io.gfile.exists(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
    raise ExportArgumentError(
        'workdir', workdir, f'has no {workdir_lib.CONFIG_FILE}: not a '
        'training workdir')
  if model == ADAPTED_LEARNER and not support_dir:
    raise ExportArgumentError('support_dir', support_dir,
                              f'is required for model={ADAPTED_LEARNER}')
  if model == ADAPT_AND_CLASSIFY and support_dir:
    raise ExportArgumentError('support_dir', support_dir,
                              f'only applies to model={ADAPTED_LEARNER}')
  if conv_dtype not in config_lib.EXPORT_CONV_DTYPES:
    raise ExportArgumentError('conv_dtype', conv_dtype,
                              f'must be one of {config_lib.EXPORT_CONV_DTYPES}')
  try:
    limits = (limits or validation.ServingLimits()).validate()
  except validation.LimitError as e:
    raise ExportArgumentError(e.field, e.value, e.requirement) from e
  if checkpoint is not None:
    _check_checkpoint(checkpoint)
  try:
    rule, config, restored = checkpoints.restore_rule(workdir, checkpoint)
  except FileNotFoundError as e:
    raise ExportArgumentError('workdir', workdir, str(e)) from e
  if checkpoint is None:
    _check_checkpoint(restored)
  export_dir = export_dir or default_export_dir(workdir, model)
  if model == ADAPT_AND_CLASSIFY:
    return export_adapt_and_classify(rule, config, export_dir, conv_dtype,
                                     limits)
  try:
    images, labels, class_names = support.load_support_folder(
        support_dir, channels=config.learner.channels)
  except ValueError as e:
    raise ExportArgumentError('support_dir', support_dir, str(e)) from e
  if len(class_names) != config.learner.num_ways:
    raise ExportArgumentError(
        'support_dir', support_dir,
        f'has {len(class_names)} class folders; the model is '
        f'{config.learner.num_ways}-way')
  return export_adapted_learner(rule, config, images, labels, class_names,
                                export_dir, limits)


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


def read_metadata(saved_model_dir: str) -> dict:
  """The export metadata written next to a SavedModel."""
  return workdir_lib.read_json(os.path.join(saved_model_dir, METADATA_FILE))
