"""A local copy of Omniglot: where it is, what it holds, its examples.

Finds, per TFDS split, the original archive or its extracted folder in a
local directory (`find_sources`), checks archives against the SHA-256 TFDS
registers, and yields every image as the (key, example) TFDS `omniglot`
would (`iterate_source`), decoding each once so a corrupt file fails here,
naming the file. The layout is described in `loader`.
"""

import dataclasses
import hashlib
import io
import os
import re
import zipfile
from typing import Dict, Iterator, Optional, Tuple

from PIL import Image as pil_image

from meta_lstm_tf.data import errors
from meta_lstm_tf.data.omniglot import catalog

OMNIGLOT_DIR_ENV = 'OMNIGLOT_DIR'

_CHARACTER_RE = re.compile(r'^character(\d+)$')
_IMAGE_RE = re.compile(r'^(\d{4})_(\d{2})\.png$')


def resolve_omniglot_dir(value: Optional[str]) -> Optional[str]:
  """Returns the local Omniglot directory to use, or None for TFDS download.

  Args:
    value: the `--omniglot_dir` flag (or argument); empty or None falls back
      to the `OMNIGLOT_DIR` environment variable.

  Returns:
    An absolute path (relative values are resolved against the current
    directory, `~` is expanded), or None when neither is set.
  """
  value = value or os.environ.get(OMNIGLOT_DIR_ENV) or None
  if value is None:
    return None
  return os.path.abspath(os.path.expanduser(value))


@dataclasses.dataclass(frozen=True)
class Source:
  """Where one split's examples come from.

  Attributes:
    split: TFDS split name.
    kind: 'archive' or 'directory'.
    path: the archive file or the extracted folder.
  """
  split: str
  kind: str
  path: str


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def verify_archive(path: str, info: catalog.ArchiveInfo) -> None:
  """Checks an archive's size and SHA-256 against the TFDS registration.

  Raises:
    DataError: naming the file, the expected and the actual value.
  """
  size = os.path.getsize(path)
  if size != info.size:
    raise errors.DataError(
        f'{path}: size {size} bytes, but the TFDS-registered '
        f'{info.filename} has {info.size} bytes (corrupt or wrong archive)')
  actual = _sha256(path)
  if actual != info.sha256:
    raise errors.DataError(
        f'{path}: SHA-256 {actual} does not match the TFDS-registered '
        f'{info.sha256} of {info.filename} (corrupt or wrong archive)')


def find_sources(omniglot_dir: str) -> Dict[str, Source]:
  """Finds, per split, the archive or extracted folder in `omniglot_dir`.

  Archives are checksummed here, before any preparation.

  Args:
    omniglot_dir: directory with original archives and/or extracted folders.

  Returns:
    Dict from split name to `Source`, only for the splits present.

  Raises:
    DataError: the directory is missing or holds no Omniglot source, or an
      archive fails its checksum.
  """
  if not omniglot_dir:
    raise errors.DataError(f'omniglot_dir={omniglot_dir!r}: no directory given')
  if not os.path.isdir(omniglot_dir):
    raise errors.DataError(f'omniglot_dir={omniglot_dir!r}: no such directory')
  sources = {}
  for split, info in catalog.ARCHIVES.items():
    archive = os.path.join(omniglot_dir, info.filename)
    folder = os.path.join(omniglot_dir, info.folder)
    if os.path.isfile(archive):
      verify_archive(archive, info)
      sources[split] = Source(split, 'archive', archive)
    elif os.path.isdir(folder):
      sources[split] = Source(split, 'directory', folder)
  if not sources:
    expected = ', '.join(f'{i.filename} or {i.folder}/'
                         for i in catalog.ARCHIVES.values())
    raise errors.DataError(
        f'omniglot_dir={omniglot_dir!r} holds no Omniglot source; expected '
        f'any of: {expected}')
  return sources


def walk_directory(root: str) -> Iterator[Tuple[str, str]]:
  """Yields (relative path, absolute path) of the files under `root`."""
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    for filename in sorted(filenames):
      if not filename.startswith('.'):
        path = os.path.join(dirpath, filename)
        yield os.path.relpath(path, root), path


def fingerprint(sources: Dict[str, Source]) -> str:
  """A digest of the sources' content (archive hashes, file names and sizes)."""
  digest = hashlib.sha256()
  for split in sorted(sources):
    source = sources[split]
    digest.update(f'{split}:{source.kind}\n'.encode())
    if source.kind == 'archive':
      digest.update(f'{catalog.ARCHIVES[split].sha256}\n'.encode())
    else:
      for relpath, path in walk_directory(source.path):
        digest.update(f'{relpath}:{os.path.getsize(path)}\n'.encode())
  return digest.hexdigest()[:16]


def _make_example(alphabet: str, character: str, filename: str, data: bytes,
                  where: str) -> Tuple[str, dict]:
  """Checks one image and returns its TFDS (key, example)."""
  if alphabet not in catalog.FIRST_LABEL:
    raise errors.DataError(
        f'{where}: unknown alphabet {alphabet!r}; Omniglot has '
        f'{", ".join(catalog.ALPHABET_NAMES)}')
  match = _CHARACTER_RE.match(character)
  num_characters = catalog.NUM_CHARACTERS[alphabet]
  if not match or not 1 <= int(match.group(1)) <= num_characters:
    raise errors.DataError(
        f'{where}: {character!r} is not characterNN with NN in '
        f'1..{catalog.NUM_CHARACTERS[alphabet]} for alphabet {alphabet!r}')
  alphabet_char_id = int(match.group(1)) - 1
  match = _IMAGE_RE.match(filename)
  if not match:
    raise errors.DataError(
        f'{where}: file name {filename!r} is not XXXX_YY.png')
  label = int(match.group(1)) - 1
  expected = catalog.FIRST_LABEL[alphabet] + alphabet_char_id
  if label != expected:
    raise errors.DataError(
        f'{where}: character id {label + 1:04d} does not belong to '
        f'{alphabet}/{character}, which is {expected + 1:04d}')
  try:
    with pil_image.open(io.BytesIO(data)) as image:
      if image.format != 'PNG':
        raise ValueError(f'format {image.format}, expected PNG')
      image.load()
      size = image.size
  except Exception as e:  # PIL raises many types for broken files.
    raise errors.DataError(
        f'{where}: corrupt or unreadable PNG image ({e})') from e
  if size != catalog.IMAGE_SHAPE[:2]:
    raise errors.DataError(f'{where}: image is {size[0]}x{size[1]}, expected '
                           f'{catalog.IMAGE_SHAPE[0]}x{catalog.IMAGE_SHAPE[1]}')
  key = f'{alphabet}_{alphabet_char_id}_{filename}'
  return key, {
      'image': data,
      'alphabet': alphabet,
      'alphabet_char_id': alphabet_char_id,
      'label': label,
  }


def _split_path(relpath: str, where: str) -> Tuple[str, str, str]:
  parts = relpath.replace(os.sep, '/').split('/')
  if len(parts) != 3:
    raise errors.DataError(
        f'{where}: expected ALPHABET/characterNN/XXXX_YY.png')
  return parts[0], parts[1], parts[2]


def iterate_source(source: Source) -> Iterator[Tuple[str, dict]]:
  """Yields the TFDS (key, example) pairs of one source.

  Raises:
    DataError: a file is misplaced, misnamed, corrupt, or the source holds no
      image.
  """
  count = 0
  if source.kind == 'directory':
    for relpath, path in walk_directory(source.path):
      with open(path, 'rb') as f:
        data = f.read()
      yield _make_example(*_split_path(relpath, path), data, path)
      count += 1
  else:
    try:
      with zipfile.ZipFile(source.path) as archive:
        for member in sorted(archive.infolist(), key=lambda m: m.filename):
          parts = member.filename.split('/')
          if (member.is_dir() or parts[0] == '__MACOSX' or
              parts[-1].startswith('.')):
            continue
          where = f'{source.path}:{member.filename}'
          if len(parts) != 4:
            raise errors.DataError(
                f'{where}: expected TOP/ALPHABET/characterNN/XXXX_YY.png')
          yield _make_example(*parts[1:], archive.read(member), where)
          count += 1
    except zipfile.BadZipFile as e:
      raise errors.DataError(f'{source.path}: corrupt zip archive ({e})') from e
  if not count:
    raise errors.DataError(f'{source.path}: holds no Omniglot image '
                           '(expected ALPHABET/characterNN/XXXX_YY.png)')
