"""The training loop's named actions, each testable alone.

`train_lib` runs the loop: one meta-train step, then every action that is
due at the new step (`Action.due`), then the stop vote. The actions:

  `Clock`                 the run's meta-training seconds, across resumes
  `LogAction`             TensorBoard: the window's mean metrics, the rate,
                          the gate histograms
  `ValidateAndKeepBest`   validation; a new best accuracy (or, with
                          --trainval, every one) keeps its checkpoint
                          under best/
  `CheckpointAction`      the resume state under checkpoints/
  `StopVote`              the time budget and SIGINT / SIGTERM, agreed by
                          every worker

Each is due every `every` steps and at the run's last step (`Periodic`),
except the checkpoint (only every `every` steps: the loop's end writes one).
"""

import time
from typing import Callable, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from meta_lstm_tf import evaluation


class Clock:
  """Meta-training seconds: those of earlier sessions plus this one's."""

  def __init__(self, base_seconds: float = 0.0, timer=time.perf_counter):
    self._timer = timer
    self._base = float(base_seconds)
    self._start = timer()

  def elapsed(self) -> float:
    return self._base + self._timer() - self._start


class Periodic:
  """Due every `every` steps, and at `last_step` if `at_last`."""

  def __init__(self, every: int, last_step: int, at_last: bool = True):
    self.every, self.last_step, self.at_last = every, last_step, at_last

  def due(self, step: int) -> bool:
    return step % self.every == 0 or (self.at_last and
                                      step == self.last_step)


class LogAction(Periodic):
  """Collects each step's metrics; when due, writes their mean over the
  window since the last write, the learning rate, episodes per second and
  the gate histograms of a fixed episode (`diagnostics()`)."""

  def __init__(self, writer, every: int, last_step: int,
               meta_batch_size: int, diagnostics: Callable[[], object],
               timer=time.perf_counter):
    super().__init__(every, last_step)
    self._writer, self._batch = writer, meta_batch_size
    self._diagnostics, self._timer = diagnostics, timer
    self._window: List[dict] = []
    self._window_start = timer()

  def record(self, metrics: dict) -> None:
    self._window.append({k: np.asarray(v) for k, v in metrics.items()})

  def __call__(self, step: int, learning_rate: float) -> dict:
    """Writes the window's means; returns them."""
    now = self._timer()
    window = self._window
    mean = {k: np.mean([w[k] for w in window], axis=0) for k in window[0]}
    self._writer.train_scalars(
        step, mean, learning_rate,
        len(window) * self._batch / max(now - self._window_start, 1e-9))
    self._writer.gate_histograms(step, self._diagnostics())
    self._window, self._window_start = [], self._timer()
    return mean


class ValidateAndKeepBest(Periodic):
  """Validates on fixed episodes; a new best accuracy saves the rule under
  best/ (`best_manager`) and updates `state.best_valid_accuracy` and
  `state.best_step`. With `keep_last` (`TrainConfig.trainval`: validation
  classes are trained on) every validation does, so best/ is the last."""

  def __init__(self, eval_step, valid_batches, writer, state, best_manager,
               clock: Clock, every: int, last_step: int, quiet: bool = False,
               keep_last: bool = False):
    super().__init__(every, last_step)
    self._eval_step, self._batches = eval_step, valid_batches
    self._writer, self._state, self._best = writer, state, best_manager
    self._clock, self._quiet, self._keep_last = clock, quiet, keep_last
    self.last_accuracy = float(state.best_valid_accuracy)

  def __call__(self, step: int, loss: Optional[float] = None) -> dict:
    valid = evaluation.evaluate(self._eval_step, self._batches)
    self._writer.valid_scalars(step, valid['accuracy'], valid['ci95'],
                               valid['loss'], self._clock.elapsed())
    state = self._state
    if self._keep_last or valid['accuracy'] > float(state.best_valid_accuracy):
      state.best_valid_accuracy.assign(valid['accuracy'])
      state.best_step.assign(step)
      self._best.save(checkpoint_number=step)
    self.last_accuracy = valid['accuracy']
    if self._quiet:
      logging.info('step %d: loss %s, valid accuracy %.4f +- %.4f (best '
                   '%.4f at %d), %.0f s', step,
                   'n/a' if loss is None else f'{loss:.4f}',
                   valid['accuracy'], valid['ci95'],
                   float(state.best_valid_accuracy), int(state.best_step),
                   self._clock.elapsed())
    return valid


class CheckpointAction(Periodic):
  """Saves the resume state (`manager`), its `train_seconds` first."""

  def __init__(self, manager: tf.train.CheckpointManager, state,
               clock: Clock, every: int):
    super().__init__(every, last_step=-1, at_last=False)
    self._manager, self._state, self._clock = manager, state, clock

  def __call__(self, step: int) -> str:
    self._state.train_seconds.assign(self._clock.elapsed())
    return self._manager.save(checkpoint_number=step)


class StopVote:
  """(time up, interrupted), agreed by every worker: any worker's signal
  or time budget stops all of them (`vote`: `distribute.make_vote`)."""

  def __init__(self, vote: Callable, clock: Clock, max_train_seconds: float,
               signal_flag):
    self._vote, self._clock = vote, clock
    self._max_seconds, self._signals = max_train_seconds, signal_flag

  def time_is_up(self) -> bool:
    return bool(self._max_seconds and
                self._clock.elapsed() >= self._max_seconds)

  def __call__(self):
    time_up, interrupted = self._vote([self.time_is_up(),
                                       self._signals.signum is not None])
    return bool(time_up), bool(interrupted)
