"""How a run stops early: a diverged meta-loss, or SIGINT / SIGTERM.

`train_lib` checks `SignalFlag` between steps, writes a checkpoint and raises
`TrainingInterrupted`; the binaries turn both errors into a one-line message
and an exit status.
"""

import signal


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
