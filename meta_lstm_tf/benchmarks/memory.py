"""This process's memory: resident set size and its peak (Linux /proc),
for the serving load test."""

import ctypes
from typing import Optional


def reset_peak_rss() -> bool:
  """Resets this process's VmHWM to its current RSS (Linux >= 4.0).

  Memory freed earlier but kept by malloc is handed back first
  (`malloc_trim`): else a later allocation reuses it without raising the
  RSS, and a growth measured from here would read low.
  """
  try:
    ctypes.CDLL(None).malloc_trim(0)
  except (AttributeError, OSError):
    pass  # Not glibc: growths may read low.
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
    return True
  except OSError:
    return False


def _status_mib(field: str) -> float:
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) / 1024.0
  raise KeyError(field)


def rss_mib() -> float:
  """This process's resident set size, MiB."""
  return _status_mib('VmRSS')


def peak_rss_mib() -> float:
  """This process's peak RSS since start or `reset_peak_rss`, MiB."""
  return _status_mib('VmHWM')


def peak_rss_growth_mib(fn) -> Optional[float]:
  """How far calling `fn()` raised the peak RSS above the RSS before it
  (None where the peak cannot be reset)."""
  if not reset_peak_rss():
    fn()
    return None
  before = rss_mib()
  fn()
  return peak_rss_mib() - before
