"""Who drew each Omniglot drawing, for Lake et al.'s one-shot protocol.

Every Omniglot character was drawn once by each of 20 people; the drawer of
`ALPHABET/characterNN/XXXX_YY.png` is YY (1..20), and within an alphabet the
same YY is the same person. TFDS examples carry no file name, so the drawer
of a prepared example is found by its character (`label` = XXXX - 1) and the
SHA-256 of its PNG bytes, which TFDS stores unchanged: `drawer_table` reads
the local copy's files once and `DrawerLookup` answers per example.

Only a local copy (`DataConfig.omniglot_dir`) has file names; TFDS's own
download does not keep them.
"""

import collections
import hashlib
import os
import zipfile
from typing import Dict, List, Tuple

from meta_lstm_tf.data import errors
from meta_lstm_tf.data.omniglot import sources


def _drawer_of(filename: str, where: str) -> Tuple[int, int]:
  """(label, drawer) of 'XXXX_YY.png', both 0-based."""
  match = sources._IMAGE_RE.match(filename)  # pylint: disable=protected-access
  if not match:
    raise errors.DataError(
        f'{where}: file name {filename!r} is not XXXX_YY.png')
  return int(match.group(1)) - 1, int(match.group(2)) - 1


def _files(source: sources.Source):
  """Yields (file name, bytes, where) of one source's PNGs."""
  if source.kind == 'directory':
    for relpath, path in sources.walk_directory(source.path):  # pylint: disable=protected-access
      if relpath.endswith('.png'):
        with open(path, 'rb') as f:
          yield os.path.basename(relpath), f.read(), path
    return
  with zipfile.ZipFile(source.path) as archive:
    for member in archive.infolist():
      name = member.filename
      if (not member.is_dir() and name.endswith('.png') and
          not name.startswith('__MACOSX')):
        yield (os.path.basename(name), archive.read(member),
               f'{source.path}:{name}')


def drawer_table(omniglot_dir: str) -> Dict[Tuple[int, bytes], List[int]]:
  """(label, SHA-256 of the PNG bytes) -> drawers, from a local copy.

  A list, because two drawings of one character could be byte-identical;
  such drawings are interchangeable, so they take their drawers in order.

  Raises:
    DataError: no local copy, or a misnamed file.
  """
  if not omniglot_dir:
    raise errors.DataError(
        'distinct_drawers needs a local Omniglot copy (--omniglot_dir or '
        'OMNIGLOT_DIR): TFDS\'s download keeps no file names, and the file '
        'name XXXX_YY.png is what says the drawer YY')
  table = collections.defaultdict(list)
  for source in sources.find_sources(omniglot_dir).values():
    for filename, data, where in _files(source):
      label, drawer = _drawer_of(filename, where)
      table[(label, hashlib.sha256(data).digest())].append(drawer)
  for drawers in table.values():
    drawers.sort()
  return dict(table)


class DrawerLookup:
  """Answers `drawer(label, png_bytes)` from a `drawer_table`."""

  def __init__(self, table: Dict[Tuple[int, bytes], List[int]]):
    self._table = {key: list(value) for key, value in table.items()}

  def drawer(self, label: int, data: bytes) -> int:
    key = (int(label), hashlib.sha256(data).digest())
    drawers = self._table.get(key)
    if not drawers:
      raise errors.DataError(
          f'a drawing of Omniglot label {label} matches no file of the local '
          'copy (or more copies of it than files): was the TFDS data set '
          'prepared from another copy?')
    return drawers.pop(0)
