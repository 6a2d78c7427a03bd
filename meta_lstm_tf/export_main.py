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
"""

from absl import app
from absl import flags

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.serving import export as serving_export
from meta_lstm_tf.serving import modules as serving_modules

_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Training workdir (config.json and checkpoints).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Checkpoint prefix to export instead of the best '
    '(else latest) checkpoint of --workdir.')
_EXPORT_DIR = flags.DEFINE_string(
    'export_dir', None, 'Model base directory; versions go to '
    'EXPORT_DIR/<version>. Default: WORKDIR/export (adapt_and_classify), '
    'WORKDIR/export_adapted_learner (adapted_learner).')
_MODEL = flags.DEFINE_enum(
    'model', serving_modules.ADAPT_AND_CLASSIFY, serving_export.MODELS,
    'adapt_and_classify: adapts to the support set sent with each request. '
    'adapted_learner: adapts once to --support_dir and exports a plain '
    'classifier.')
_SUPPORT_DIR = flags.DEFINE_string(
    'support_dir', None, 'For --model=adapted_learner: one subfolder of '
    'images per class; classes are the subfolder names, sorted.')
_CONV_DTYPE = flags.DEFINE_enum(
    'conv_dtype', 'float32', list(config_lib.EXPORT_CONV_DTYPES),
    "For adapt_and_classify: the learner's conv precision in the SavedModel. "
    'float32 (default) runs on any CPU; bfloat16 is faster on CPUs with '
    'AVX512-BF16 or AMX and slow on others.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required')
  try:
    path = serving_export.export_from_workdir(
        _WORKDIR.value, _MODEL.value, checkpoint=_CHECKPOINT.value,
        export_dir=_EXPORT_DIR.value, support_dir=_SUPPORT_DIR.value,
        conv_dtype=_CONV_DTYPE.value)
  except serving_export.ExportArgumentError as e:
    raise app.UsageError(f'--{e}') from e
  print(path)


def run():
  flags.mark_flag_as_required('workdir')
  app.run(main)


if __name__ == '__main__':
  run()
