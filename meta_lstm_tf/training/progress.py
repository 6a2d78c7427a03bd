"""Training progress on stdout: a progress bar on a terminal, plain lines
otherwise.

Keras' `Progbar` redraws one line with carriage returns; written to a file
(nohup, CI, a cluster's log collector) that is one endless line. When the
stream is not a terminal, `make_progress` returns `LineProgress` instead,
which prints one plain line every `every` steps: step, rate, loss, accuracy,
validation accuracy and the time left.
"""

import sys
import time
from typing import Callable, Optional, Sequence, Tuple

import keras


class LineProgress:
  """Prints `step S/N  R steps/s  name value ...  left T` every `every` steps.

  The time left is the smaller of the steps left at the current rate and
  `seconds_left()` (a time budget), when given.
  """

  def __init__(self, total_steps: int, every: int, stream=None,
               seconds_left: Optional[Callable[[], Optional[float]]] = None,
               clock: Callable[[], float] = time.perf_counter):
    if every < 1:
      raise ValueError(f'every={every}: must be >= 1')
    self.total_steps = int(total_steps)
    self.every = int(every)
    self.stream = stream or sys.stdout
    self.seconds_left = seconds_left
    self._clock = clock
    self._last_step: Optional[int] = None
    self._last_time = 0.0

  def update(self, step: int,
             values: Sequence[Tuple[str, float]] = ()) -> None:
    now = self._clock()
    if self._last_step is None:
      self._last_step, self._last_time = step, now
      return
    if step % self.every and step != self.total_steps:
      return
    seconds = now - self._last_time
    rate = (step - self._last_step) / seconds if seconds > 0 else 0.0
    self._last_step, self._last_time = step, now
    parts = [f'step {step}/{self.total_steps}', f'{rate:.1f} steps/s']
    parts += [f'{name} {value:.4f}' for name, value in values]
    left = (self.total_steps - step) / rate if rate > 0 else None
    budget = self.seconds_left() if self.seconds_left else None
    if budget is not None:
      left = budget if left is None else min(left, budget)
    if left is not None:
      parts.append(f'left {_duration(left)}')
    self.stream.write('  '.join(parts) + '\n')
    self.stream.flush()


def _duration(seconds: float) -> str:
  seconds = max(int(round(seconds)), 0)
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m'
  return f'{minutes}m{seconds:02d}s' if minutes else f'{seconds}s'


def make_progress(total_steps: int, every: int, enabled: bool = True,
                  stream=None,
                  seconds_left: Optional[Callable[[], Optional[float]]] = None):
  """A Keras progress bar on a terminal, `LineProgress` otherwise.

  Args:
    total_steps: the last step.
    every: steps between plain lines (not a terminal).
    enabled: False gives an object whose `update` prints nothing.
    stream: where to write (default sys.stdout); decides terminal or not.
    seconds_left: optional time budget left, for the plain lines' estimate.
  """
  stream = stream or sys.stdout
  if not enabled:
    return keras.utils.Progbar(total_steps, verbose=0)
  isatty = getattr(stream, 'isatty', None)
  if isatty is not None and isatty():
    return keras.utils.Progbar(
        total_steps, verbose=1,
        stateful_metrics=['loss', 'acc', 'valid_acc', 'episodes/s'])
  return LineProgress(total_steps, every, stream, seconds_left)
