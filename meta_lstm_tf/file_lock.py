"""File locks: waiting for a shared preparation, or owning a directory.

`wait_for_lock(path)` blocks until this process holds the lock (the TFDS
preparation of a local Omniglot copy: concurrent callers wait, then reuse
it). `exclusive_lock(directory, what)` takes a directory for this process
alone and fails at once when another process has it (one training run per
workdir, one grid per grid root, one pretraining per directory): the error
names the holder's pid, which the holder writes into the lock file.

Both are `fcntl.flock` locks, so the kernel releases them when the holder
exits, however it exits (SIGKILL included): a stale lock file never blocks
anybody. They are advisory and local to one machine (NFS may not honour
them). On other file systems (a path with `://`: `gs://`, `ram://`, ...)
there is nothing to flock: both run unlocked, with a logged warning, and
keeping to one process per directory is up to the user.
"""

import contextlib
import errno
import fcntl
import os
from typing import Iterator, Optional

from absl import logging

LOCK_FILE = '.lock'


def _is_local(path: str) -> bool:
  return '://' not in os.fspath(path)


class DirectoryBusyError(RuntimeError):
  """Another process holds the directory's lock."""


@contextlib.contextmanager
def wait_for_lock(path: str) -> Iterator[None]:
  """Holds an exclusive lock on the file `path`, waiting for it (on a
  non-local path: no lock, a warning)."""
  if not _is_local(path):
    logging.warning('%s is not on a local file system: no lock is taken '
                    '(flock is local only).', path)
    yield
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'a') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      pid = f.read().strip()
  except OSError:
    pid = ''
  return f'pid {pid}' if pid else 'another process'


@contextlib.contextmanager
def exclusive_lock(directory: str,
                   what: str = 'directory') -> Iterator[Optional[str]]:
  """Holds DIRECTORY/.lock for this process alone; yields the lock's path.

  On a non-local directory (`gs://...`) it yields None and does nothing
  else (the caller creates the directory): no lock, a logged warning.

  Args:
    directory: created if missing.
    what: what the directory is, for the error ('workdir', 'grid root').

  Raises:
    DirectoryBusyError: another process holds it (naming its pid).
  """
  if not _is_local(directory):
    logging.warning(
        '%s %r is not on a local file system: it is not locked (flock is '
        'local only), so make sure no other process uses it.', what,
        directory)
    yield None
    return
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, LOCK_FILE)
  # 'a+': opening must not truncate the holder's pid before we hold the lock.
  with open(path, 'a+') as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise
      raise DirectoryBusyError(
          f'{what} {directory!r} is in use by {_holder(path)} (lock file '
          f'{path}); wait for that run to end, or use another '
          f'{what}') from None
    try:
      f.seek(0)
      f.truncate()
      f.write(f'{os.getpid()}\n')
      f.flush()
      yield path
    finally:
      f.seek(0)
      f.truncate()
      f.flush()
      fcntl.flock(f, fcntl.LOCK_UN)
