"""The main job end to end on the real Omniglot background/evaluation sets.

Needs OMNIGLOT_DIR (CI sets it to ../shared/data/omniglot); skipped otherwise.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import tensorflow as tf

from tests.fixtures import real_data

REPO = real_data.REPO
OMNIGLOT_DIR = real_data.OMNIGLOT_DIR

pytestmark = pytest.mark.skipif(not OMNIGLOT_DIR,
                                reason=real_data.SKIP_REASON)

# Small but real: 5-way 1-shot on the lake split with the paper's learner.
QUICK = ['--flagfile=configs/mini.flags', '--quiet', '--noexport',
         '--max_train_seconds=0']


def main_command(workdir, *extra):
  # The flagfile first: later flags override it.
  return [sys.executable, '-m', 'meta_lstm_tf.main', *QUICK,
          f'--workdir={workdir}', f'--omniglot_dir={OMNIGLOT_DIR}', *extra]


def run_main(workdir, *extra, timeout=600, with_stdout=False):
  result = subprocess.run(main_command(workdir, *extra), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  return (results, result.stdout) if with_stdout else results


def wait_for(path, process, timeout=300):
  deadline = time.time() + timeout
  while not os.path.exists(path):
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert time.time() < deadline, f'{path} never appeared'
    time.sleep(0.2)


def test_brief_training_beats_chance_on_held_out_classes():
  workdir = tempfile.mkdtemp()
  # --noquiet with stdout a pipe: plain progress lines, not a redrawn bar.
  results, stdout = run_main(workdir, '--max_steps=150', '--inner_steps=5',
                             '--eval_every=75', '--eval_episodes=30',
                             '--test_episodes=100', '--noquiet',
                             '--log_every=50', with_stdout=True)
  # Chance is 0.2; a broken meta-learner or learner stays near it.
  assert results['test_accuracy'] > 0.45, results
  assert results['valid_accuracy'] > 0.45, results
  assert '\r' not in stdout and '\x08' not in stdout, stdout[-500:]
  progress = [line for line in stdout.splitlines()
              if line.startswith('step ')]
  assert [line.split()[1] for line in progress] == [
      '50/150', '100/150', '150/150'], stdout[-2000:]
  assert ' steps/s  loss ' in progress[-1], progress
  assert results['test_episodes'] == 100
  assert 0 < results['test_ci95'] < 0.1


RESUME = ('--deterministic', '--max_steps=20', '--inner_steps=3',
          '--eval_every=10', '--eval_episodes=10', '--test_episodes=20',
          '--checkpoint_every=5', '--log_every=5')


def test_sigkill_and_resume_reproduces_uninterrupted_run():
  full_dir = tempfile.mkdtemp()
  full = run_main(full_dir, *RESUME)

  killed_dir = tempfile.mkdtemp()
  process = subprocess.Popen(main_command(killed_dir, *RESUME), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  wait_for(os.path.join(killed_dir, 'checkpoints', 'ckpt-10.index'), process)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  assert not os.path.exists(os.path.join(killed_dir, 'results.json'))
  resumed = run_main(killed_dir, *RESUME)
  for key in ('test_accuracy', 'test_ci95', 'test_loss', 'valid_accuracy',
              'best_step', 'steps'):
    assert resumed[key] == full[key], (key, resumed[key], full[key])


def test_sigterm_writes_a_checkpoint_and_exits():
  workdir = tempfile.mkdtemp()
  process = subprocess.Popen(
      main_command(workdir, '--max_steps=100000', '--inner_steps=2',
                   '--checkpoint_every=5', '--eval_every=1000',
                   '--eval_episodes=5'),
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  checkpoint_dir = os.path.join(workdir, 'checkpoints')
  wait_for(os.path.join(checkpoint_dir, 'ckpt-5.index'), process)
  signalled = time.time()
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  written = re.search(r'checkpoint (\S+) written; rerun the same command to '
                      'resume', stderr)
  assert written, stderr[-3000:]
  written = written.group(1)
  # The checkpoint the handler named was saved after the signal (the state
  # file records each save's time.time() in the saving process), is the
  # newest, and holds the step its name says: not the periodic ckpt-5 that
  # existed before the signal (a signal during step 5's save makes the
  # handler save ckpt-5 again, later).
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  assert state.model_checkpoint_path == written, (state, written)
  saved_at = dict(zip(state.all_model_checkpoint_paths,
                      state.all_model_checkpoint_timestamps))
  assert saved_at[written] > signalled, (saved_at, signalled)
  step = int(written.rsplit('-', 1)[1])
  assert step >= 5
  assert tf.train.load_variable(written,
                                'step/.ATTRIBUTES/VARIABLE_VALUE') == step


def test_missing_data_directory_fails_before_training():
  workdir = tempfile.mkdtemp()
  result = subprocess.run(
      [sys.executable, '-m', 'meta_lstm_tf.main', f'--workdir={workdir}',
       '--omniglot_dir=/nonexistent/omniglot', '--max_steps=1'],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode != 0
  assert '/nonexistent/omniglot' in result.stderr
  assert not os.path.exists(os.path.join(workdir, 'checkpoints'))
