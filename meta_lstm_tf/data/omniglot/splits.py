"""Omniglot's class splits: which classes are meta-train, -valid and -test.

Every split decodes its images once (through `image_ops.preprocess_images`)
into in-memory `class_pools.ClassPool`s; episodes are then sampled from tensors.
`make_class_pools` here serves `DataConfig.dataset='omniglot'`; the data
package's front door (`data.pools`) dispatches every data set.

Omniglot pools know each class's alphabet and, from a local copy, each
drawing's drawer (`drawers`): what Lake et al.'s one-shot protocol
(`EpisodeConfig.episode_classes`, `distinct_drawers`) samples by.

Protocols (`DataConfig.split`):
  lake     The data set authors' protocol. meta_test = the evaluation set
           (20 alphabets, 659 characters). The background set (30 alphabets,
           964 characters) is split by alphabet: meta_valid = the fixed
           `LAKE_VALID_ALPHABETS` (4 alphabets, 150 characters), meta_train =
           the other 26 alphabets (814 characters). The held-out alphabets are
           those of the Vinyals validation split that lie in the background
           set, minus Early_Aramaic (which is in small1); none is in small1 or
           small2. Choose hyperparameters on meta_valid, never on meta_test.
  minimal  meta_train = TFDS split `small1` or `small2`
           (`DataConfig.minimal_subset`, 5 alphabets each), meta_valid = the
           same `LAKE_VALID_ALPHABETS` characters from the background set
           (disjoint from both small sets; the two small sets share Greek and
           Latin, so neither can validate the other), meta_test = the
           evaluation set.
  vinyals  The split of Matching Networks / ProtoNets / MAML / Meta-SGD, read
           from `DataConfig.split_dir`: `train.txt`, `val.txt`, `test.txt`, one
           class per line as `ALPHABET/characterNN/rotDDD` (DDD in 000, 090,
           180, 270; each rotation is its own class; alphabets from either
           image set). 4,112 / 688 / 1,692 classes. The project cannot ship the
           files (they belong to the ProtoNets authors, MIT license); get them
           from https://github.com/jakesnell/prototypical-networks, directory
           `data/omniglot/splits/vinyals/`.

`DataConfig.rotations` adds the 90, 180 and 270 degree rotations of every
meta_train character as new classes (for lake and minimal; meta_valid and
meta_test keep the original characters so results stay comparable to the
protocol). For vinyals the split files already name every rotation class, so
the setting has no effect there. `DataConfig.rotated_alphabets` makes every
rotation of an alphabet an alphabet of its own ('ALPHABET/rot090'), so
within-alphabet episodes keep one orientation (lake and minimal with
`rotations`, and vinyals).

Rotations are counter-clockwise (`np.rot90`, as `tf.image.rot90` and PIL's
`rotate`), applied to the resized images (area resizing commutes with
90 degree rotations).

Shape glossary:
  C: classes in a pool; D: drawings per class (20 in Omniglot);
  H = W = `DataConfig.image_size`; ch: channels (1 for Omniglot).
"""

import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import errors
from meta_lstm_tf.data import image_ops
from meta_lstm_tf.data.omniglot import catalog
from meta_lstm_tf.data.omniglot import drawers as drawers_lib
from meta_lstm_tf.data.omniglot import loader


LAKE_VALID_ALPHABETS = ('Armenian', 'Bengali', 'Hebrew',
                        'Mkhedruli_(Georgian)')
VINYALS_SPLIT_FILES = (('meta_train', 'train.txt'), ('meta_valid', 'val.txt'),
                       ('meta_test', 'test.txt'))
ROTATIONS = (0, 90, 180, 270)

_DECODE_BATCH = 512


class _Classes(NamedTuple):
  """Decoded classes in NumPy, before they become a `class_pools.ClassPool`."""
  images: np.ndarray  # float32 [C, D, H, W, 1]
  names: Tuple[str, ...]  # 'ALPHABET/characterNN'
  alphabets: Tuple[str, ...]
  drawers: Optional[np.ndarray]  # int32 [C, D], or None


def class_name(alphabet: str, alphabet_char_id: int) -> str:
  """'ALPHABET/characterNN' for a 0-based `alphabet_char_id`."""
  return f'{alphabet}/character{alphabet_char_id + 1:02d}'


def _load_classes(split_name: str, data_config: config_lib.DataConfig,
                  drawers: Optional[drawers_lib.DrawerLookup] = None
                  ) -> _Classes:
  """Decodes a TFDS split once and groups its drawings by character.

  With `drawers`, also finds each drawing's drawer (from its PNG bytes).
  """
  dataset = loader.load_omniglot_split(
      split_name, data_config.omniglot_dir, data_config.data_dir,
      decoders={'image': tfds.decode.SkipDecoding()})

  def decode(example):
    # channels=1 decodes Omniglot's 1-bit PNGs exactly (0 or 255).
    image = tf.io.decode_png(example['image'], channels=1)
    # The PNG bytes only when drawers are looked up (they cost memory).
    png = example['image'] if drawers else tf.constant(b'')
    return (image, example['label'], example['alphabet'],
            example['alphabet_char_id'], png)

  def preprocess(images, labels, alphabets, char_ids, pngs):
    return (image_ops.preprocess_images(images, data_config.image_size),
            labels, alphabets, char_ids, pngs)

  dataset = (dataset
             .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
             .batch(_DECODE_BATCH)
             .map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
  parts = [tuple(t.numpy() for t in batch) for batch in dataset]
  if not parts:
    raise errors.DataError(f'Omniglot split {split_name!r} is empty')
  images, labels, alphabets, char_ids, pngs = (np.concatenate(
      [p[i] for p in parts]) for i in range(5))

  order = np.argsort(labels, kind='stable')
  unique, starts, counts = np.unique(labels[order], return_index=True,
                                     return_counts=True)
  if counts.min() != counts.max():
    raise errors.DataError(
        f'Omniglot split {split_name!r}: characters have between '
        f'{counts.min()} (label {unique[np.argmin(counts)]}) and '
        f'{counts.max()} drawings; a class pool needs the same number for '
        'every character')
  names, alphabet_names = [], []
  for label, start in zip(unique, starts):
    index = order[start]
    alphabet = catalog.ALPHABET_NAMES[alphabets[index]]
    char_id = int(char_ids[index])
    if catalog.FIRST_LABEL[alphabet] + char_id != label:
      raise errors.DataError(
          f'Omniglot split {split_name!r}: label {label} does not match '
          f'alphabet {alphabet!r}, alphabet_char_id {char_id}')
    names.append(class_name(alphabet, char_id))
    alphabet_names.append(alphabet)
  images = images[order].reshape(
      (len(unique), counts[0]) + images.shape[1:])
  drawer_ids = None
  if drawers:
    drawer_ids = np.array([drawers.drawer(labels[i], pngs[i]) for i in order],
                          np.int32).reshape(len(unique), counts[0])
    bad = [i for i, row in enumerate(drawer_ids)
           if sorted(row) != list(range(counts[0]))]
    if bad:
      raise errors.DataError(
          f'Omniglot split {split_name!r}: character {names[bad[0]]!r} has '
          f'drawers {sorted(drawer_ids[bad[0]] + 1)}, not one drawing by each '
          f'of 1..{counts[0]}')
  return _Classes(images, tuple(names), tuple(alphabet_names), drawer_ids)


def _select(classes: _Classes, keep: np.ndarray) -> _Classes:
  indices = np.flatnonzero(keep)
  return _Classes(classes.images[indices],
                  tuple(classes.names[i] for i in indices),
                  tuple(classes.alphabets[i] for i in indices),
                  None if classes.drawers is None else
                  classes.drawers[indices])


def _by_alphabet(classes: _Classes, alphabets: Sequence[str],
                 inside: bool) -> _Classes:
  mask = np.array([a in alphabets for a in classes.alphabets], dtype=bool)
  return _select(classes, mask if inside else ~mask)


def _rotate(images: np.ndarray, degrees: int) -> np.ndarray:
  """Rotates [..., H, W, 1] counter-clockwise by a multiple of 90 degrees."""
  return np.rot90(images, k=degrees // 90, axes=(-3, -2))


def _with_rotations(classes: _Classes,
                    rotated_alphabets: bool = False) -> _Classes:
  """Every class followed by its rotations, each a class of its own (and,
  with `rotated_alphabets`, of an alphabet 'ALPHABET/rotDDD' of its own)."""
  rotated = np.stack([_rotate(classes.images, d) for d in ROTATIONS], axis=1)
  names = tuple(f'{name}/rot{d:03d}' for name in classes.names
                for d in ROTATIONS)
  return _Classes(
      rotated.reshape((-1,) + classes.images.shape[1:]), names,
      tuple(_alphabet(name, rotated_alphabets) for name in names),
      None if classes.drawers is None else
      np.repeat(classes.drawers, len(ROTATIONS), axis=0))


def alphabet_of(class_name_: str) -> str:
  """'ALPHABET' of 'ALPHABET/characterNN[/rotDDD]'."""
  return class_name_.split('/', 1)[0]


def _alphabet(class_name_: str, by_rotation: bool) -> str:
  """The alphabet of a rotation class 'ALPHABET/characterNN/rotDDD':
  'ALPHABET', or 'ALPHABET/rotDDD' `by_rotation`
  (`DataConfig.rotated_alphabets`)."""
  if not by_rotation:
    return alphabet_of(class_name_)
  return f"{alphabet_of(class_name_)}/{class_name_.rsplit('/', 1)[1]}"


def _to_pool(classes: _Classes, pool_name: str,
             description: str) -> class_pools.ClassPool:
  if not len(classes.names):
    raise errors.DataError(f'{pool_name} has no class ({description})')
  return class_pools.ClassPool(
      images=tf.constant(np.ascontiguousarray(classes.images,
                                              dtype=np.float32)),
      class_names=tuple(classes.names), alphabets=tuple(classes.alphabets),
      drawers=classes.drawers)


def read_vinyals_split_file(path: str) -> List[Tuple[str, int]]:
  """Reads a Vinyals split file.

  Args:
    path: a file of `ALPHABET/characterNN/rotDDD` lines.

  Returns:
    (class name 'ALPHABET/characterNN', rotation in degrees) per line.

  Raises:
    DataError: missing file, malformed or duplicate line, naming the line.
  """
  if not os.path.isfile(path):
    raise errors.DataError(f'vinyals split file {path!r} does not exist')
  entries, seen = [], set()
  with open(path) as f:
    for number, line in enumerate(f, start=1):
      line = line.strip()
      if not line:
        continue
      parts = line.split('/')
      rotation = parts[2][3:] if len(parts) == 3 else ''
      if (len(parts) != 3 or not parts[2].startswith('rot') or
          not rotation.isdigit() or int(rotation) not in ROTATIONS):
        raise errors.DataError(
            f'{path}:{number}: {line!r} is not ALPHABET/characterNN/rotDDD '
            f'with DDD in {ROTATIONS}')
      if line in seen:
        raise errors.DataError(f'{path}:{number}: duplicate class {line!r}')
      seen.add(line)
      entries.append((f'{parts[0]}/{parts[1]}', int(rotation)))
  if not entries:
    raise errors.DataError(f'vinyals split file {path!r} is empty')
  return entries


def _vinyals_pools(data_config, load) -> class_pools.ClassPools:
  """Pools from the split files, rotation classes included."""
  split_dir = os.path.abspath(os.path.expanduser(data_config.split_dir))
  if not os.path.isdir(split_dir):
    raise errors.DataError(
        f'split_dir={split_dir!r} does not exist (it should hold '
        'train.txt, val.txt, test.txt)')
  background, evaluation = load('train'), load('test')
  images = np.concatenate([background.images, evaluation.images])
  index = {name: i for i, name in
           enumerate(background.names + evaluation.names)}
  all_drawers = (None if background.drawers is None else
                 np.concatenate([background.drawers, evaluation.drawers]))
  pools, owner = {}, {}
  for pool_name, filename in VINYALS_SPLIT_FILES:
    path = os.path.join(split_dir, filename)
    entries = read_vinyals_split_file(path)
    pool_images = np.empty((len(entries),) + images.shape[1:], np.float32)
    names, rows = [], []
    for i, (name, rotation) in enumerate(entries):
      if name not in index:
        raise errors.DataError(
            f'{path}: class {name!r} is not in the Omniglot data '
            '(background or evaluation set)')
      full_name = f'{name}/rot{rotation:03d}'
      if full_name in owner:
        raise errors.DataError(f'{path}: class {full_name!r} is also in '
                               f'{owner[full_name]}; splits must be disjoint')
      owner[full_name] = filename
      pool_images[i] = _rotate(images[index[name]], rotation)
      names.append(full_name)
      rows.append(index[name])
    pools[pool_name] = _to_pool(_Classes(
        pool_images, tuple(names),
        tuple(_alphabet(n, data_config.rotated_alphabets) for n in names),
        None if all_drawers is None else all_drawers[rows]), pool_name, path)
  return class_pools.ClassPools(**pools)


def make_class_pools(data_config: config_lib.DataConfig,
                     drawers: bool = False) -> class_pools.ClassPools:
  """Decodes Omniglot once and splits its classes into meta-split pools.

  Args:
    data_config: `config.DataConfig` with `dataset='omniglot'`:
      `omniglot_dir=None` loads TFDS `omniglot` (downloading it if needed),
      otherwise the local copy; `split` names the protocol.
    drawers: also find each Omniglot drawing's drawer
      (`class_pools.ClassPool.drawers`, for
      `EpisodeConfig.distinct_drawers`); needs a local copy.

  Returns:
    `class_pools.ClassPools` with disjoint classes (see the module docstring).

  Raises:
    ValueError: invalid `data_config` (from its `validate()`).
    DataError: missing, corrupt or incomplete data or split files.
  """
  data_config = data_config.validate()
  if data_config.dataset != 'omniglot':
    raise ValueError(f'dataset={data_config.dataset!r}: Omniglot splits need '
                     "dataset='omniglot' (data.pools serves every data set)")
  lookup = (drawers_lib.DrawerLookup(drawers_lib.drawer_table(
      data_config.omniglot_dir)) if drawers else None)
  loaded: Dict[str, _Classes] = {}

  def load(split_name: str) -> _Classes:
    if split_name not in loaded:
      loaded[split_name] = _load_classes(split_name, data_config, lookup)
    return loaded[split_name]

  if data_config.split == 'vinyals':
    return _vinyals_pools(data_config, load)

  if data_config.split == 'lake':
    train_description = 'background set minus LAKE_VALID_ALPHABETS'
    meta_train = _by_alphabet(load('train'), LAKE_VALID_ALPHABETS,
                              inside=False)
  else:  # minimal
    train_description = f'TFDS split {data_config.minimal_subset}'
    meta_train = load(data_config.minimal_subset)
  meta_valid = _by_alphabet(load('train'), LAKE_VALID_ALPHABETS, inside=True)
  meta_test = load('test')

  if data_config.rotations:
    meta_train = _with_rotations(meta_train, data_config.rotated_alphabets)
  return class_pools.ClassPools(
      meta_train=_to_pool(meta_train, 'meta_train', train_description),
      meta_valid=_to_pool(
          meta_valid, 'meta_valid',
          f'LAKE_VALID_ALPHABETS {LAKE_VALID_ALPHABETS} of '
          'the background set'), meta_test=_to_pool(meta_test, 'meta_test',
                                                    'evaluation set'))

