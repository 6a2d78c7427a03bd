"""Layout of a training workdir: its files, its config records and exports
(checkpoints: `checkpoints.py`).

    WORKDIR/.lock             held by the process running in it
                              (`file_lock.exclusive_lock`; names its pid)
    WORKDIR/config.json       the ExperimentConfig of the run
    WORKDIR/config_changes.json
                              changes accepted with --allow_config_change
    WORKDIR/flags.txt         the command-line flags of the run
    WORKDIR/checkpoints/      tf.train.CheckpointManager: rule, optimizer,
                              step, best validation accuracy (resume state)
    WORKDIR/best/             the best checkpoint by validation accuracy
                              (rule only)
    WORKDIR/logs/             TensorBoard
    WORKDIR/pretrain/         the pretraining of --init_from=pretrained
                              (`baselines.pretrain`)
    WORKDIR/results.json      final test metrics
    WORKDIR/export/<version>/ adapt-and-classify SavedModel for TF Serving
    WORKDIR/export_adapted_learner/<version>/
                              adapted-learner SavedModels (meta-lstm-export)

Every file of a workdir is read and written through `tf.io.gfile`, so a
workdir may be on any file system TensorFlow knows (`gs://...`, `ram://...`;
`is_local` tells them apart). Files are replaced atomically where the file
system renames atomically (a temporary name, then a rename; local files are
also synced to disk first). The lock is local only (`file_lock.py`).
"""

import json
import os
import time
from typing import List, Optional, Tuple, Union
import uuid

from absl import logging
import tensorflow as tf

from meta_lstm_tf import config as config_lib

CONFIG_FILE = 'config.json'
FLAGS_FILE = 'flags.txt'
RESULTS_FILE = 'results.json'
CONFIG_CHANGES_FILE = 'config_changes.json'
CHECKPOINT_DIR = 'checkpoints'
BEST_DIR = 'best'
LOG_DIR = 'logs'
EXPORT_DIR = 'export'
PRETRAIN_DIR = 'pretrain'


def is_local(path: str) -> bool:
  """Whether `path` is on the local file system (no `scheme://`)."""
  return '://' not in os.fspath(path)


def absolute(path: str) -> str:
  """`os.path.abspath` for local paths; other file systems' paths as they
  are (their URLs are absolute)."""
  return os.path.abspath(path) if is_local(path) else path


def _sync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def write_atomic(path: str, data: Union[str, bytes]) -> None:
  """Writes text or bytes to path atomically: to a temporary name in the
  same directory, then renamed over `path` (`tf.io.gfile`, any file
  system; a local file is synced to disk before the rename)."""
  directory = os.path.dirname(absolute(path))
  tf.io.gfile.makedirs(directory)
  tmp = os.path.join(directory, f'.tmp-{uuid.uuid4().hex}')
  try:
    with tf.io.gfile.GFile(tmp, 'wb') as f:
      f.write(data.encode('utf-8') if isinstance(data, str) else data)
    if is_local(tmp):
      _sync(tmp)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
    raise


def write_json(path: str, value) -> None:
  write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def read_json(path: str):
  """The JSON value of a file (`tf.io.gfile`: any file system)."""
  with tf.io.gfile.GFile(path, 'r') as f:
    return json.loads(f.read())


def config_from_dict(value: dict) -> config_lib.ExperimentConfig:
  """Inverse of `ExperimentConfig.to_dict()`, also of earlier versions'
  config.json (`config.migrate`)."""
  return config_lib.ExperimentConfig.from_dict(value)


def load_config(workdir: str) -> config_lib.ExperimentConfig:
  path = os.path.join(workdir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir!r} a training '
                            'workdir?')
  return config_from_dict(read_json(path))


# The budget: a resumed run may extend it without --allow_config_change.
BUDGET_FIELDS = tuple(f'{part}.{field.name}' for part, field in
                      config_lib.declared_settings('budget'))

# What changes neither the numbers nor the budget: where the data is, and
# the runtime (bookkeeping, and how the same computation is placed on
# devices: a run resumes the same under any strategy).
_IRRELEVANT = tuple((part, field.name) for role in ('path', 'runtime')
                    for part, field in config_lib.declared_settings(role))


def relevant_config(config_dict: dict) -> dict:
  """The parts of a config (`to_dict()`, of any version: `config.migrate`)
  that change a run's numbers or budget: every setting declared with the
  role `experiment` or `budget`."""
  # Deep copy, tuples -> lists.
  relevant = json.loads(json.dumps(config_lib.migrate(config_dict)))
  for part, field in _IRRELEVANT:
    relevant.get(part, {}).pop(field, None)
  return {part: fields for part, fields in relevant.items() if fields}


def config_changes(previous: dict, config: dict) -> List[Tuple[str, object,
                                                               object]]:
  """[(part.field, old, new)] where two configs' relevant parts differ.

  A setting added after `previous` was written (absent from it) counts as
  unchanged while `config` keeps its default, which is the behaviour every
  new setting's default preserves: runs of earlier versions still resume
  and still count as finished grid cells.
  """
  previous, config = relevant_config(previous), relevant_config(config)
  defaults = config_lib.ExperimentConfig().to_dict()
  changes = []
  for part in sorted(set(previous) | set(config)):
    old_part, new_part = previous.get(part, {}), config.get(part, {})
    for field in sorted(set(old_part) | set(new_part)):
      old, new = old_part.get(field), new_part.get(field)
      if (field not in old_part and part in previous and
          field in defaults.get(part, {}) and
          new == defaults[part][field]):
        continue
      if old != new:
        changes.append((f'{part}.{field}', old, new))
  return changes


def _is_extension(change) -> bool:
  """A budget raised (or a limit lifted: 0 seconds is no limit)."""
  name, old, new = change
  if name not in BUDGET_FIELDS:
    return False
  if name == 'train.max_train_seconds':
    return (old or 0) != 0 and (new == 0 or new >= old)
  return old is not None and new >= old


def check_same_experiment(workdir: str,
                          config: config_lib.ExperimentConfig,
                          allow_config_change: bool = False
                          ) -> List[Tuple[str, object, object]]:
  """Refuses to resume a run of a different experiment in `workdir`.

  Every setting that changes the numbers counts (`relevant_config`); raising
  the budget (`BUDGET_FIELDS`) is allowed: that is how a run is extended.

  Args:
    workdir: the run directory (no config.json yet: nothing to check).
    config: the config about to run there.
    allow_config_change: accept any change (the caller then records it).

  Returns:
    The changes accepted, [(part.field, old, new)].

  Raises:
    ValueError: a change other than a budget extension, naming every
      changed field with its old and new value.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    return []
  try:
    previous = read_json(path)
  except (OSError, ValueError, tf.errors.OpError) as e:
    raise ValueError(f'{path} is unreadable ({e}): cannot tell which '
                     'experiment this workdir holds; use a new --workdir') from None
  changes = config_changes(previous, config.to_dict())
  refused = [c for c in changes if not _is_extension(c)]
  if refused and not allow_config_change:
    listing = '; '.join(f'{name}: {old!r} -> {new!r}'
                        for name, old, new in refused)
    raise ValueError(
        f'workdir={workdir!r} holds a run of another experiment; resuming it '
        f'would change {listing}. Use a new --workdir, or '
        '--allow_config_change to continue this run with the new settings '
        '(recorded in config_changes.json)')
  return changes


def record_config_changes(workdir: str, changes) -> None:
  """Appends accepted changes to WORKDIR/config_changes.json."""
  if not changes:
    return
  path = os.path.join(workdir, CONFIG_CHANGES_FILE)
  history = []
  if tf.io.gfile.exists(path):
    history = read_json(path)
  history.append({'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                  'changes': [{'field': name, 'old': old, 'new': new}
                              for name, old, new in changes]})
  write_json(path, history)


def finished_results(workdir: str, config: config_lib.ExperimentConfig
                     ) -> Optional[dict]:
  """The results of a finished run of `config` in `workdir`, else None.

  Finished: WORKDIR/results.json exists and config.json equals `config` up
  to paths and bookkeeping (`relevant_config`); another budget is not the
  same run (it resumes).
  """
  results_path = os.path.join(workdir, RESULTS_FILE)
  config_path = os.path.join(workdir, CONFIG_FILE)
  if not (tf.io.gfile.exists(results_path) and
          tf.io.gfile.exists(config_path)):
    return None
  if config_changes(read_json(config_path), config.to_dict()):
    return None
  return read_json(results_path)


def remove_stale_exports(export_base: str) -> List[str]:
  """Removes `.tmp-export-*` folders a killed export left; returns them.

  Only call it while holding the workdir's lock (no export is running).
  """
  removed = []
  if not tf.io.gfile.isdir(export_base):
    return removed
  for name in tf.io.gfile.listdir(export_base):
    name = name.rstrip('/')  # Some file systems list directories so.
    if name.startswith('.tmp-export'):
      path = os.path.join(export_base, name)
      try:
        tf.io.gfile.rmtree(path)
      except tf.errors.OpError as e:
        logging.warning('Could not remove %s: %s', path, e)
        continue
      removed.append(path)
  return removed


def retire_previous_results(workdir: str) -> None:
  """A finished run trained further: its results.json moves aside (to
  results_previous.json), so results.json always belongs to config.json."""
  path = os.path.join(workdir, RESULTS_FILE)
  if tf.io.gfile.exists(path):
    tf.io.gfile.rename(path, os.path.join(workdir, 'results_previous.json'),
                       overwrite=True)


def write_run_records(config: config_lib.ExperimentConfig, out_dir: str,
                      flags_text: Optional[str]) -> None:
  """config.json and flags.txt next to the run's outputs."""
  write_json(os.path.join(out_dir, CONFIG_FILE), config.to_dict())
  if flags_text is not None:
    write_atomic(os.path.join(out_dir, FLAGS_FILE), flags_text)
