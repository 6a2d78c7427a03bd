"""The training loop's actions, each alone, with fakes for their
collaborators."""

import types as pytypes

import numpy as np
import tensorflow as tf

from meta_lstm_tf.training import actions


class _Timer:
  def __init__(self, now=0.0):
    self.now = now

  def __call__(self):
    return self.now


class _Writer:
  def __init__(self):
    self.calls = []

  def train_scalars(self, step, mean, rate, episodes_per_sec):
    self.calls.append(('train', step, mean, rate, episodes_per_sec))

  def gate_histograms(self, step, result):
    self.calls.append(('gates', step, result))

  def valid_scalars(self, step, accuracy, ci95, loss, seconds):
    self.calls.append(('valid', step, accuracy, seconds))


class _Manager:
  def __init__(self):
    self.saved = []

  def save(self, checkpoint_number):
    self.saved.append(checkpoint_number)
    return f'ckpt-{checkpoint_number}'


def _state(best=-1.0, best_step=-1):
  return pytypes.SimpleNamespace(
      best_valid_accuracy=tf.Variable(best, dtype=tf.float64),
      best_step=tf.Variable(best_step, dtype=tf.int64),
      train_seconds=tf.Variable(0.0, dtype=tf.float64))


class ActionsTest(tf.test.TestCase):

  def test_clock_adds_earlier_sessions(self):
    timer = _Timer(100.0)
    clock = actions.Clock(30.0, timer=timer)
    timer.now = 112.5
    self.assertEqual(clock.elapsed(), 42.5)

  def test_periodic_is_due_every_n_steps_and_at_the_last(self):
    self.assertEqual([s for s in range(1, 12)
                      if actions.Periodic(4, 11).due(s)], [4, 8, 11])
    self.assertEqual([s for s in range(1, 12)
                      if actions.Periodic(4, 11, at_last=False).due(s)],
                     [4, 8])

  def test_log_writes_the_window_mean_and_rate_then_starts_over(self):
    writer, timer = _Writer(), _Timer(0.0)
    log = actions.LogAction(writer, every=2, last_step=10, meta_batch_size=3,
                            diagnostics=lambda: 'gates', timer=timer)
    log.record({'loss': tf.constant(1.0), 'curve': tf.constant([1.0, 3.0])})
    log.record({'loss': tf.constant(3.0), 'curve': tf.constant([3.0, 5.0])})
    timer.now = 2.0
    mean = log(2, learning_rate=0.01)
    self.assertEqual(float(mean['loss']), 2.0)
    self.assertAllEqual(mean['curve'], [2.0, 4.0])
    kind, step, written, rate, per_sec = writer.calls[0]
    self.assertEqual((kind, step, rate), ('train', 2, 0.01))
    self.assertEqual(per_sec, 2 * 3 / 2.0)  # 2 steps x 3 episodes in 2 s.
    self.assertEqual(writer.calls[1], ('gates', 2, 'gates'))
    log.record({'loss': tf.constant(5.0), 'curve': tf.constant([0.0, 0.0])})
    timer.now = 3.0
    self.assertEqual(float(log(3, 0.01)['loss']), 5.0)  # A new window.
    self.assertEqual(writer.calls[2][4], 3 / 1.0)

  def test_validation_keeps_only_a_better_checkpoint(self):
    accuracies = iter([[0.5, 0.7], [0.4, 0.4], [0.9, 0.9]])

    def eval_step(batch):
      del batch
      accuracy = tf.constant(next(accuracies), tf.float32)
      return tf.zeros_like(accuracy), accuracy

    writer, state, best = _Writer(), _state(), _Manager()
    clock = actions.Clock(timer=_Timer(5.0))
    validate = actions.ValidateAndKeepBest(eval_step, [None], writer, state,
                                           best, clock, every=3, last_step=9)
    self.assertAllClose(validate(3)['accuracy'], 0.6)
    self.assertEqual((float(state.best_valid_accuracy), int(state.best_step)),
                     (np.float32(0.6), 3))
    validate(6)  # Worse: the best stays at step 3.
    self.assertEqual(int(state.best_step), 3)
    self.assertAllClose(validate.last_accuracy, 0.4)
    validate(9)
    self.assertEqual(int(state.best_step), 9)
    self.assertEqual(best.saved, [3, 9])
    self.assertEqual([c[1] for c in writer.calls], [3, 6, 9])

  def test_validation_with_keep_last_keeps_every_checkpoint(self):
    # --trainval: the validation classes are trained on, so best/ is the
    # last validation's checkpoint whatever its accuracy.
    accuracies = iter([0.6, 0.4, 0.5])

    def eval_step(batch):
      del batch
      accuracy = tf.constant([next(accuracies)], tf.float32)
      return tf.zeros_like(accuracy), accuracy

    state, best = _state(), _Manager()
    validate = actions.ValidateAndKeepBest(
        eval_step, [None], _Writer(), state, best,
        actions.Clock(timer=_Timer(5.0)), every=3, last_step=9,
        keep_last=True)
    for step in (3, 6, 9):
      validate(step)
    self.assertEqual(best.saved, [3, 6, 9])
    self.assertEqual((float(state.best_valid_accuracy), int(state.best_step)),
                     (np.float32(0.5), 9))

  def test_checkpoint_records_the_seconds_then_saves(self):
    state, manager, timer = _state(), _Manager(), _Timer(10.0)
    checkpoint = actions.CheckpointAction(manager, state,
                                          actions.Clock(7.0, timer=timer),
                                          every=5)
    self.assertFalse(checkpoint.due(7))
    self.assertTrue(checkpoint.due(10))
    timer.now = 13.0
    self.assertEqual(checkpoint(10), 'ckpt-10')
    self.assertEqual(float(state.train_seconds), 10.0)

  def test_stop_vote_reports_time_budget_and_signals(self):
    timer = _Timer(0.0)
    flag = pytypes.SimpleNamespace(signum=None)
    votes = []

    def vote(values):
      votes.append(list(values))
      return tuple(values)

    stop = actions.StopVote(vote, actions.Clock(timer=timer), 60.0, flag)
    self.assertEqual(stop(), (False, False))
    timer.now = 60.0
    self.assertEqual(stop(), (True, False))
    flag.signum = 15
    self.assertEqual(stop(), (True, True))
    self.assertEqual(votes[0], [False, False])
    unlimited = actions.StopVote(vote, actions.Clock(timer=timer), 0.0, flag)
    self.assertFalse(unlimited.time_is_up())


if __name__ == '__main__':
  tf.test.main()
