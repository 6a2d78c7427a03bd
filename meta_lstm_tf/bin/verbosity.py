"""How loud the binaries are: warnings and errors by default, INFO on request.

TensorFlow's C++ logging reads `TF_CPP_MIN_LOG_LEVEL` once, when TensorFlow
loads, so each binary calls `quiet_tensorflow_by_default(sys.argv)` before it
imports TensorFlow (this module imports nothing heavy); absl's `--verbosity`
then defaults to WARNING (`cli.run_binary`). An explicit `--verbosity=0` (or
`-v 0`, INFO) or higher on the command line brings INFO back in both, and a
`TF_CPP_MIN_LOG_LEVEL` already set is left alone. (A few lines TensorFlow's
libraries print while they load ignore the variable.)
"""

import os
from typing import Optional, Sequence

TF_CPP_MIN_LOG_LEVEL = 'TF_CPP_MIN_LOG_LEVEL'
# TensorFlow's C++ logs: errors only (2 hides INFO and WARNING).
QUIET_TF_CPP_MIN_LOG_LEVEL = '2'
# absl's --verbosity: -1 is WARNING (0 INFO, 1 DEBUG).
QUIET_VERBOSITY = -1

_VERBOSITY_FLAGS = ('--verbosity', '-verbosity', '--v', '-v')


def verbosity_from_argv(argv: Sequence[str]) -> Optional[int]:
  """The --verbosity / -v value of a command line (the last one), if any.

  Flagfiles are not read: only the command line itself counts.
  """
  value = None
  args = list(argv[1:])
  i = 0
  while i < len(args):
    arg = args[i]
    if arg == '--':
      break
    name, sep, rest = arg.partition('=')
    if name in _VERBOSITY_FLAGS:
      if sep:
        value = rest
      elif i + 1 < len(args):
        value = args[i + 1]
        i += 1
    i += 1
  try:
    return int(value) if value is not None else None
  except ValueError:
    return None  # absl reports the bad value when it parses the flags.


def quiet_tensorflow_by_default(argv: Sequence[str]) -> None:
  """Sets TF_CPP_MIN_LOG_LEVEL to errors only, unless it is set already or
  the command line asks for INFO (--verbosity >= 0). Call it before
  TensorFlow is imported."""
  if TF_CPP_MIN_LOG_LEVEL in os.environ:
    return
  verbosity = verbosity_from_argv(argv)
  if verbosity is not None and verbosity >= 0:
    return
  os.environ[TF_CPP_MIN_LOG_LEVEL] = QUIET_TF_CPP_MIN_LOG_LEVEL
