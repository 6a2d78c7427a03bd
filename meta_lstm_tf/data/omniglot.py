"""Omniglot sources: TFDS `omniglot` online, or the same examples offline.

Online (`omniglot_dir=None`), `tfds.load('omniglot')` downloads and prepares
the data set. Offline, `OmniglotOffline` (TFDS name `omniglot_offline`) reads a
local copy of Omniglot in its original form and writes a normal TFDS data set
with the same features, split names and example keys as TFDS `omniglot`:

  features  image: Image(shape=(105, 105, 3), png), the original PNG bytes;
            label: ClassLabel(1623), the global character id (file XXXX - 1);
            alphabet: ClassLabel(50), index into the sorted alphabet names;
            alphabet_char_id: int64, characterNN - 1.
  splits    train = images_background (964 characters, 19,280 drawings),
            test = images_evaluation (659, 13,180), small1 (2,720 drawings),
            small2 (3,120 drawings).

The local directory may hold, per split, the original archive
(`images_background.zip`, `images_evaluation.zip`,
`images_background_small1.zip`, `images_background_small2.zip`) and/or its
extracted folder (`images_background/ALPHABET/characterNN/XXXX_YY.png`, the
layout torchvision and others keep). When both are present the archive is
used, because its bytes can be checked against the SHA-256 TFDS registers for
it. Only the splits whose source is present are prepared. Every image is
decoded once during preparation, so corrupt files fail there, naming the file.

Preparation happens once per distinct source content (the builder config name
is a fingerprint of the sources) under a file lock, so concurrent processes do
not corrupt the prepared copy; later loads only read the TFRecords.

Shape glossary: H = W = 105 source pixels; C = 3 channels as TFDS declares
them (the PNGs themselves are 1-bit grayscale, white background, black
strokes).
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import os
import re
import zipfile
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
from PIL import Image as pil_image
import tensorflow as tf
import tensorflow_datasets as tfds

OMNIGLOT_DIR_ENV = 'OMNIGLOT_DIR'

SPLIT_NAMES = ('train', 'test', 'small1', 'small2')
IMAGE_SHAPE = (105, 105, 3)
NUM_CLASSES = 1623
NUM_ALPHABETS = 50

# (alphabet, number of characters) in the order of the global character ids
# (XXXX in the file names): alphabet k's characters are the ids following
# those of alphabets 0..k-1. The first 30 are the background set.
_ALPHABET_TABLE = (
    ('Arcadian', 26), ('Armenian', 41), ('Asomtavruli_(Georgian)', 40),
    ('Balinese', 24), ('Bengali', 46),
    ('Blackfoot_(Canadian_Aboriginal_Syllabics)', 14), ('Braille', 26),
    ('Cyrillic', 33), ('Early_Aramaic', 22), ('Syriac_(Estrangelo)', 23),
    ('Anglo-Saxon_Futhorc', 29), ('Futurama', 26), ('Grantha', 43),
    ('Greek', 24), ('Gujarati', 48), ('Hebrew', 22), ('Japanese_(hiragana)', 52),
    ('Inuktitut_(Canadian_Aboriginal_Syllabics)', 16),
    ('Malay_(Jawi_-_Arabic)', 40), ('Japanese_(katakana)', 47), ('Korean', 40),
    ('Latin', 26), ('Alphabet_of_the_Magi', 20), ('Mkhedruli_(Georgian)', 41),
    ('Burmese_(Myanmar)', 34), ('N_Ko', 33),
    ('Ojibwe_(Canadian_Aboriginal_Syllabics)', 14), ('Sanskrit', 42),
    ('Tagalog', 17), ('Tifinagh', 55),
    # Evaluation set.
    ('Angelic', 20), ('Atemayar_Qelisayer', 26), ('Atlantean', 26),
    ('Aurek-Besh', 26), ('Avesta', 26), ('Ge_ez', 26), ('Glagolitic', 45),
    ('Gurmukhi', 45), ('Kannada', 41), ('Keble', 26), ('Malayalam', 47),
    ('Manipuri', 40), ('Mongolian', 30), ('Old_Church_Slavonic_(Cyrillic)', 45),
    ('Oriya', 46), ('Syriac_(Serto)', 23), ('Sylheti', 28), ('Tengwar', 25),
    ('Tibetan', 42), ('ULOG', 26),
)


def _first_labels() -> Dict[str, int]:
  first, result = 0, {}
  for alphabet, num_characters in _ALPHABET_TABLE:
    result[alphabet] = first
    first += num_characters
  return result


# alphabet -> global id of its first character.
FIRST_LABEL = _first_labels()
# alphabet -> number of characters.
NUM_CHARACTERS = dict(_ALPHABET_TABLE)
# TFDS encodes `alphabet` as the index into the sorted names.
ALPHABET_NAMES = tuple(sorted(NUM_CHARACTERS))
BACKGROUND_ALPHABETS = tuple(sorted(a for a, _ in _ALPHABET_TABLE[:30]))
EVALUATION_ALPHABETS = tuple(sorted(a for a, _ in _ALPHABET_TABLE[30:]))
# TFDS label names: f'{alphabet}_{alphabet_char_id}' in global id order.
LABEL_NAMES = tuple(f'{alphabet}_{i}' for alphabet, n in _ALPHABET_TABLE
                    for i in range(n))


@dataclasses.dataclass(frozen=True)
class _ArchiveInfo:
  filename: str
  folder: str
  size: int
  sha256: str


# The archives TFDS `omniglot` downloads, with the size and SHA-256 it
# registers for them (tensorflow_datasets/url_checksums/omniglot.txt).
ARCHIVES = {
    'train': _ArchiveInfo(
        'images_background.zip', 'images_background', 9464212,
        'ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640'),
    'test': _ArchiveInfo(
        'images_evaluation.zip', 'images_evaluation', 6462886,
        '1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee'),
    'small1': _ArchiveInfo(
        'images_background_small1.zip', 'images_background_small1', 1319022,
        'f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4'),
    'small2': _ArchiveInfo(
        'images_background_small2.zip', 'images_background_small2', 1580917,
        '3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f'),
}

_CITATION = """\
@article{lake2015human,
  title={Human-level concept learning through probabilistic program induction},
  author={Lake, Brenden M and Salakhutdinov, Ruslan and Tenenbaum, Joshua B},
  journal={Science},
  volume={350},
  number={6266},
  pages={1332--1338},
  year={2015},
}
"""

_CHARACTER_RE = re.compile(r'^character(\d+)$')
_IMAGE_RE = re.compile(r'^(\d{4})_(\d{2})\.png$')


class DataError(ValueError):
  """A data source or class split is missing, corrupt or inconsistent."""


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


def verify_archive(path: str, info: _ArchiveInfo) -> None:
  """Checks an archive's size and SHA-256 against the TFDS registration.

  Raises:
    DataError: naming the file, the expected and the actual value.
  """
  size = os.path.getsize(path)
  if size != info.size:
    raise DataError(
        f'{path}: size {size} bytes, but the TFDS-registered '
        f'{info.filename} has {info.size} bytes (corrupt or wrong archive)')
  actual = _sha256(path)
  if actual != info.sha256:
    raise DataError(
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
    raise DataError(f'omniglot_dir={omniglot_dir!r}: no directory given')
  if not os.path.isdir(omniglot_dir):
    raise DataError(f'omniglot_dir={omniglot_dir!r}: no such directory')
  sources = {}
  for split, info in ARCHIVES.items():
    archive = os.path.join(omniglot_dir, info.filename)
    folder = os.path.join(omniglot_dir, info.folder)
    if os.path.isfile(archive):
      verify_archive(archive, info)
      sources[split] = Source(split, 'archive', archive)
    elif os.path.isdir(folder):
      sources[split] = Source(split, 'directory', folder)
  if not sources:
    expected = ', '.join(f'{i.filename} or {i.folder}/'
                         for i in ARCHIVES.values())
    raise DataError(
        f'omniglot_dir={omniglot_dir!r} holds no Omniglot source; expected '
        f'any of: {expected}')
  return sources


def _walk_directory(root: str) -> Iterator[Tuple[str, str]]:
  """Yields (relative path, absolute path) of the files under `root`."""
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    for filename in sorted(filenames):
      if not filename.startswith('.'):
        path = os.path.join(dirpath, filename)
        yield os.path.relpath(path, root), path


def _fingerprint(sources: Dict[str, Source]) -> str:
  """A digest of the sources' content (archive hashes, file names and sizes)."""
  digest = hashlib.sha256()
  for split in sorted(sources):
    source = sources[split]
    digest.update(f'{split}:{source.kind}\n'.encode())
    if source.kind == 'archive':
      digest.update(f'{ARCHIVES[split].sha256}\n'.encode())
    else:
      for relpath, path in _walk_directory(source.path):
        digest.update(f'{relpath}:{os.path.getsize(path)}\n'.encode())
  return digest.hexdigest()[:16]


def _make_example(alphabet: str, character: str, filename: str, data: bytes,
                  where: str) -> Tuple[str, dict]:
  """Checks one image and returns its TFDS (key, example)."""
  if alphabet not in FIRST_LABEL:
    raise DataError(f'{where}: unknown alphabet {alphabet!r}; Omniglot has '
                    f'{", ".join(ALPHABET_NAMES)}')
  match = _CHARACTER_RE.match(character)
  if not match or not 1 <= int(match.group(1)) <= NUM_CHARACTERS[alphabet]:
    raise DataError(
        f'{where}: {character!r} is not characterNN with NN in '
        f'1..{NUM_CHARACTERS[alphabet]} for alphabet {alphabet!r}')
  alphabet_char_id = int(match.group(1)) - 1
  match = _IMAGE_RE.match(filename)
  if not match:
    raise DataError(f'{where}: file name {filename!r} is not XXXX_YY.png')
  label = int(match.group(1)) - 1
  expected = FIRST_LABEL[alphabet] + alphabet_char_id
  if label != expected:
    raise DataError(
        f'{where}: character id {label + 1:04d} does not belong to '
        f'{alphabet}/{character}, which is {expected + 1:04d}')
  try:
    with pil_image.open(io.BytesIO(data)) as image:
      if image.format != 'PNG':
        raise ValueError(f'format {image.format}, expected PNG')
      image.load()
      size = image.size
  except Exception as e:  # PIL raises many types for broken files.
    raise DataError(f'{where}: corrupt or unreadable PNG image ({e})') from e
  if size != IMAGE_SHAPE[:2]:
    raise DataError(f'{where}: image is {size[0]}x{size[1]}, expected '
                    f'{IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}')
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
    raise DataError(f'{where}: expected ALPHABET/characterNN/XXXX_YY.png')
  return parts[0], parts[1], parts[2]


def iterate_source(source: Source) -> Iterator[Tuple[str, dict]]:
  """Yields the TFDS (key, example) pairs of one source.

  Raises:
    DataError: a file is misplaced, misnamed, corrupt, or the source holds no
      image.
  """
  count = 0
  if source.kind == 'directory':
    for relpath, path in _walk_directory(source.path):
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
            raise DataError(
                f'{where}: expected TOP/ALPHABET/characterNN/XXXX_YY.png')
          yield _make_example(*parts[1:], archive.read(member), where)
          count += 1
    except zipfile.BadZipFile as e:
      raise DataError(f'{source.path}: corrupt zip archive ({e})') from e
  if not count:
    raise DataError(f'{source.path}: holds no Omniglot image '
                    '(expected ALPHABET/characterNN/XXXX_YY.png)')


class OmniglotOffline(tfds.core.GeneratorBasedBuilder):
  """TFDS `omniglot`, prepared from a local copy instead of a download."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Same features, splits and keys as TFDS omniglot 3.0.0.',
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put any of images_background.zip, images_evaluation.zip,
  images_background_small1.zip, images_background_small2.zip (from
  https://github.com/brendenlake/omniglot/tree/master/python) and/or their
  extracted folders in `manual_dir`.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='Omniglot (Lake et al., 2015) from a local copy; the '
                    'examples of TFDS `omniglot`.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(
                shape=IMAGE_SHAPE, encoding_format='png'),
            'alphabet': tfds.features.ClassLabel(names=ALPHABET_NAMES),
            'alphabet_char_id': np.int64,
            'label': tfds.features.ClassLabel(names=LABEL_NAMES),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://github.com/brendenlake/omniglot/',
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager):
    sources = find_sources(os.fspath(dl_manager.manual_dir))
    return {split: self._generate_examples(source)
            for split, source in sources.items()}

  def _generate_examples(self, source: Source):
    yield from iterate_source(source)


@contextlib.contextmanager
def _file_lock(path: str):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def prepare_offline_builder(omniglot_dir: str,
                            data_dir: Optional[str] = None) -> OmniglotOffline:
  """Returns the prepared `OmniglotOffline` builder for a local copy.

  Prepares it on first use (under a file lock, so concurrent callers wait for
  one preparation instead of racing); later calls only open it.

  Args:
    omniglot_dir: local Omniglot directory (see module docstring).
    data_dir: TFDS data directory; None means the TFDS default
      (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).

  Raises:
    DataError: missing or empty directory, bad archive checksum, corrupt or
      misnamed image.
  """
  omniglot_dir = os.path.abspath(os.path.expanduser(omniglot_dir))
  sources = find_sources(omniglot_dir)
  config = tfds.core.BuilderConfig(
      name=f'local_{_fingerprint(sources)}',
      description='sources: ' + ', '.join(
          f'{s.split}={s.kind}' for s in sources.values()))

  def make_builder():
    return OmniglotOffline(config=config, data_dir=data_dir)

  builder = make_builder()
  if not builder.is_prepared():
    with _file_lock(os.fspath(builder.data_path) + '.lock'):
      builder = make_builder()  # Another process may have prepared it.
      if not builder.is_prepared():
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=omniglot_dir, try_download_gcs=False))
        builder = make_builder()
  return builder


# What a failed TFDS download raises: requests' and urllib's errors are
# OSErrors; TFDS wraps some in its own DownloadError.
_DOWNLOAD_ERRORS = (OSError,) + tuple(
    e for e in (getattr(getattr(tfds, 'download', None), 'DownloadError',
                        None),) if isinstance(e, type))


def download_failed_message(error: BaseException) -> str:
  """What to do when TFDS could not download Omniglot."""
  first_line = (str(error).strip().splitlines() or [''])[0][:200]
  return (
      'TFDS could not download Omniglot '
      f'({type(error).__name__}: {first_line}). Without network access, '
      f'point --omniglot_dir (or ${OMNIGLOT_DIR_ENV}) at a local copy: a '
      'folder holding images_background.zip and images_evaluation.zip, or '
      'their extracted folders images_background/ALPHABET/characterNN/*.png '
      'and images_evaluation/... (from github.com/brendenlake/omniglot, '
      'python/).')


def load_omniglot_split(split_name: str,
                        omniglot_dir: Optional[str] = None,
                        data_dir: Optional[str] = None,
                        *,
                        decoders: Optional[dict] = None) -> tf.data.Dataset:
  """Loads one TFDS Omniglot split as a dataset of feature dicts.

  Args:
    split_name: one of `SPLIT_NAMES`.
    omniglot_dir: local copy of Omniglot; None loads TFDS `omniglot` (which
      downloads it when not yet prepared in `data_dir`). This function does
      not read `OMNIGLOT_DIR`; pass `resolve_omniglot_dir(flag)` for that.
    data_dir: TFDS data directory (None: TFDS default).
    decoders: optional TFDS decoders, e.g.
      `{'image': tfds.decode.SkipDecoding()}` for the PNG bytes.

  Returns:
    `tf.data.Dataset` of dicts with `image`, `label`, `alphabet`,
    `alphabet_char_id`, in the stored (deterministic) order.

  Raises:
    DataError: unknown split, or any problem with the local copy, including a
      split whose source is not in it.
  """
  if split_name not in SPLIT_NAMES:
    raise DataError(f'split_name={split_name!r}: unknown Omniglot split, '
                    f'expected one of {SPLIT_NAMES}')
  if omniglot_dir is None:
    try:
      return tfds.load('omniglot', split=split_name, data_dir=data_dir,
                       decoders=decoders, shuffle_files=False)
    except _DOWNLOAD_ERRORS as e:
      raise DataError(download_failed_message(e)) from e
  builder = prepare_offline_builder(omniglot_dir, data_dir)
  if split_name not in builder.info.splits:
    info = ARCHIVES[split_name]
    raise DataError(
        f'split {split_name!r} is not available from omniglot_dir='
        f'{omniglot_dir!r}: it needs {info.filename} or {info.folder}/ there')
  return builder.as_dataset(split=split_name, decoders=decoders,
                            shuffle_files=False)
