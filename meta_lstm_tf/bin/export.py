r"""Exports a trained meta-learner as a versioned SavedModel for TF Serving.

    # The few-shot classifier (adapts to the support set of each request):
    meta-lstm-export --workdir=/tmp/run

    # A learner adapted once to fixed classes, one subfolder of images each:
    meta-lstm-export --workdir=/tmp/run --model=adapted_learner \
        --support_dir=/data/my_classes

Restores the best checkpoint of the run (else the latest, or --checkpoint) and
writes EXPORT_DIR/<version>/ (the next integer version; default EXPORT_DIR is
WORKDIR/export, or WORKDIR/export_adapted_learner for the adapted learner).
Prints the new version's path. See `export/README.md` for serving it.

The SavedModel refuses requests over its limits (--max_support_images,
--max_query_images, --max_image_height, --max_image_width; recorded in its
metadata as `serving_limits`) with INVALID_ARGUMENT, before decoding or
adapting anything.
"""

import sys

from meta_lstm_tf.bin import verbosity

# Before TensorFlow loads: its C++ INFO and WARNING lines off by default.
verbosity.quiet_tensorflow_by_default(sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf.serving import export as serving_export
from meta_lstm_tf.serving import modules as serving_modules
from meta_lstm_tf.serving import validation as serving_validation

_DEFAULT_LIMITS = serving_validation.ServingLimits()


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The binary's flags, on `flag_values`."""
  flags.DEFINE_string(
      'workdir', None, 'Training workdir (config.json and checkpoints).',
      flag_values=flag_values)
  flags.DEFINE_string(
      'checkpoint', None, 'Checkpoint prefix to export instead of the best '
      '(else latest) checkpoint of --workdir.', flag_values=flag_values)
  flags.DEFINE_string(
      'export_dir', None, 'Model base directory; versions go to '
      'EXPORT_DIR/<version>. Default: WORKDIR/export (adapt_and_classify), '
      'WORKDIR/export_adapted_learner (adapted_learner).',
      flag_values=flag_values)
  flags.DEFINE_enum(
      'model', serving_modules.ADAPT_AND_CLASSIFY, serving_export.MODELS,
      'adapt_and_classify: adapts to the support set sent with each request. '
      'adapted_learner: adapts once to --support_dir and exports a plain '
      'classifier.', flag_values=flag_values)
  flags.DEFINE_string(
      'support_dir', None, 'For --model=adapted_learner: one subfolder of '
      'images per class; classes are the subfolder names, sorted.',
      flag_values=flag_values)
  flags.DEFINE_enum(
      'conv_dtype', 'float32', list(config_lib.EXPORT_CONV_DTYPES),
      "For adapt_and_classify: the learner's conv precision in the SavedModel. "
      'float32 (default) runs on any CPU; bfloat16 is faster on CPUs with '
      'AVX512-BF16 or AMX and slow on others.', flag_values=flag_values)
  flags.DEFINE_integer(
      'max_support_images', _DEFAULT_LIMITS.max_support_images,
      'Requests with more support images are refused (adapt_and_classify).',
      lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer(
      'max_query_images', _DEFAULT_LIMITS.max_query_images,
      'Requests with more query images (adapted_learner: images) are refused.',
      lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer(
      'max_image_height', _DEFAULT_LIMITS.max_image_height,
      'Images taller than this (encoded ones: as their PNG/JPEG header says, '
      'checked before decoding) are refused.', lower_bound=1,
      flag_values=flag_values)
  flags.DEFINE_integer(
      'max_image_width', _DEFAULT_LIMITS.max_image_width,
      'Images wider than this are refused (as --max_image_height).',
      lower_bound=1, flag_values=flag_values)


def main(argv):
  if not flags.FLAGS.workdir:
    raise app.UsageError('--workdir is required')
  try:
    path = serving_export.export_from_workdir(
        flags.FLAGS.workdir, flags.FLAGS.model,
        checkpoint=flags.FLAGS.checkpoint,
        export_dir=flags.FLAGS.export_dir, support_dir=flags.FLAGS.support_dir,
        conv_dtype=flags.FLAGS.conv_dtype,
        limits=serving_validation.ServingLimits(
            max_support_images=flags.FLAGS.max_support_images,
            max_query_images=flags.FLAGS.max_query_images,
            max_image_height=flags.FLAGS.max_image_height,
            max_image_width=flags.FLAGS.max_image_width))
  except serving_export.ExportArgumentError as e:
    raise app.UsageError(f'--{e}') from e
  print(path)


def run():
  cli.run_binary(main, define_flags, required=('workdir',))


if __name__ == '__main__':
  run()
