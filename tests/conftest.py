"""Shared pytest configuration.

Puts the repository root on `sys.path` (the package is not installed) and
registers the `slow` marker for tests that take more than about a minute;
deselect them with `-m "not slow"`.
"""

import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
  sys.path.insert(0, _REPO_ROOT)


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: takes more than about a minute; deselect with '
      '-m "not slow"')


def pytest_collection_modifyitems(config, items):
  """Drops `tf.test.TestCase.test_session`, a deprecated TF1 helper that
  pytest collects as a test and reports as skipped: a skip in the summary
  should mean that a real test did not run."""
  del config
  items[:] = [item for item in items if item.name != 'test_session']
