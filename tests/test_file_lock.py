"""File locks: one process per directory, the holder named, released on
exit however the holder exits."""

import os
import signal
import tempfile

import tensorflow as tf

from meta_lstm_tf import file_lock
from tests.fixtures import locks


class ExclusiveLockTest(tf.test.TestCase):

  def test_second_holder_fails_naming_the_pid_until_the_first_dies(self):
    directory = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), 'w')
    holder = locks.hold_lock(directory)
    try:
      with self.assertRaisesRegex(
          file_lock.DirectoryBusyError,
          rf"workdir '{directory}' is in use by pid {holder.pid} "):
        with file_lock.exclusive_lock(directory, 'workdir'):
          self.fail('took a lock another process holds')
    finally:
      holder.send_signal(signal.SIGKILL)
      holder.wait()
    # SIGKILL gave no chance to clean up: the kernel released the lock.
    with file_lock.exclusive_lock(directory, 'workdir') as path:
      with open(path) as f:
        self.assertEqual(f.read().strip(), str(os.getpid()))
      # Not re-entrant across opens either: a second open of the same lock
      # in this process is refused too.
      with self.assertRaises(file_lock.DirectoryBusyError):
        with file_lock.exclusive_lock(directory):
          pass
    with file_lock.exclusive_lock(directory):
      pass

  def test_wait_for_lock_serialises(self):
    path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), 'x.lock')
    with file_lock.wait_for_lock(path):
      self.assertTrue(os.path.exists(path))
    with file_lock.wait_for_lock(path):
      pass

  def test_non_local_paths_are_not_locked_and_say_so(self):
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp(dir=self.get_temp_dir()))
    try:
      with self.assertLogs(level='WARNING') as logs:
        with file_lock.exclusive_lock('ram://lock_test/w', 'workdir') as path:
          self.assertIsNone(path)
          # A second holder is not refused: there is no lock.
          with file_lock.exclusive_lock('ram://lock_test/w', 'workdir'):
            pass
        with file_lock.wait_for_lock('ram://lock_test/x.lock'):
          pass
      self.assertEqual(os.listdir('.'), [])  # No local 'ram:' folder.
    finally:
      os.chdir(cwd)
    self.assertLen(logs.output, 3)
    self.assertIn("workdir 'ram://lock_test/w' is not on a local file "
                  'system: it is not locked', logs.output[0])


if __name__ == '__main__':
  tf.test.main()
