"""How a run stops early: a diverged meta-loss, SIGINT / SIGTERM, or an
error, and how the binaries then exit.

`train_lib` checks `SignalFlag` between steps, writes a checkpoint and raises
`TrainingInterrupted`; the binaries run under `exit_on_error()`, which turns
these and every expected failure (bad config or data, a busy workdir, a full
disk, a TensorFlow op error) into one `error: ...` line on stderr and a
non-zero exit status, instead of a traceback.
"""

import contextlib
import signal
import sys
from typing import Iterator

from absl import logging
import tensorflow as tf

from meta_lstm_tf import file_lock


class TrainingDivergedError(RuntimeError):
  """The meta-loss became NaN or Inf."""


class TrainingInterrupted(Exception):
  """SIGINT or SIGTERM arrived; a checkpoint was written."""

  def __init__(self, signum: int, checkpoint: str):
    super().__init__(f'stopped by signal {signum}; checkpoint {checkpoint} '
                     'written; rerun the same command to resume')
    self.signum = signum


class SignalFlag:
  """Turns SIGINT/SIGTERM into a flag checked between steps."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for signum in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[signum] = signal.signal(signum, self._handle)
      except ValueError:  # Not the main thread: leave signals alone.
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.signum = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


# Raised by bad input or a failing machine, not by a bug: reported in one
# line. (OSError covers FileNotFoundError and a full disk.)
EXPECTED_ERRORS = (ValueError, OSError, tf.errors.OpError,
                   TrainingDivergedError, file_lock.DirectoryBusyError)


def one_line(error: BaseException) -> str:
  """The error as one line: its type where that says something, and the
  first line of its message (TF op errors append graph context)."""
  if isinstance(error, tf.errors.OpError):
    message = error.message
  else:
    message = str(error)
  lines = [l.strip() for l in message.strip().splitlines() if l.strip()]
  first = lines[0] if lines else ''
  if isinstance(error, (tf.errors.OpError, OSError)):
    return f'{type(error).__name__}: {first}'
  return first or type(error).__name__


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
  """For a binary's main: an expected error exits 1 with `error: LINE` on
  stderr (the full error in the log); `TrainingInterrupted` exits
  128 + the signal, as a shell reports a killed process."""
  try:
    yield
  except TrainingInterrupted as e:
    logging.warning('%s', e)
    sys.exit(128 + e.signum)
  except EXPECTED_ERRORS as e:
    logging.error('%s', one_line(e))
    print(f'error: {one_line(e)}', file=sys.stderr)
    sys.exit(1)
