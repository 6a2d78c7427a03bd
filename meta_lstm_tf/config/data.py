"""What a run learns from: the data set and its class split, and the
episodes sampled from it."""

import dataclasses
from typing import Optional, Tuple

from meta_lstm_tf.config import settings



@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which images, from where, and how classes are split.

  Attributes:
    dataset: one of `settings.DATASETS`: `omniglot` (TFDS or `omniglot_dir`),
      `mini_imagenet` (Ravi & Larochelle's split, a local copy in
      `data_root`, `data.photos.mini_imagenet`) or `image_folder` (any
      `data_root/{train,val,test}/CLASS/*.png|jpg`,
      `data.photos.image_folder`).
    data_root: the local copy of `mini_imagenet` / `image_folder`.
    channels: image channels the learner sees: 1 for Omniglot; 3 (RGB) or
      1 (gray) for the others (images are converted, never rejected).
    omniglot_dir: local copy of Omniglot (archives and/or extracted folders);
      None means TFDS downloads it.
    data_dir: TFDS data directory (None: TFDS default).
    split: class split protocol, one of `settings.SPLITS`.
    split_dir: directory with `train.txt`, `val.txt`, `test.txt` (vinyals).
    minimal_subset: `small1` or `small2` for the `minimal` split.
    rotations: add 90/180/270 degree rotations of every class as new classes.
    rotated_alphabets: each rotation of an alphabet is an alphabet of its
      own (`EpisodeConfig.episode_classes='within_alphabet'`).
    image_size: images are resized to image_size x image_size.
  """
  dataset: str = settings.setting(
      'omniglot', 'Data set: omniglot (TFDS, or --omniglot_dir), '
      'mini_imagenet (Ravi & Larochelle\'s split, a local copy in '
      '--data_root) or image_folder (--data_root/{train,val,test}/CLASS/'
      '*.png|jpg).', choices=settings.DATASETS, record=True)
  data_root: Optional[str] = settings.setting(
      None, 'Local copy of --dataset=mini_imagenet (images/ and train.csv, '
      'val.csv, test.csv; or train/CLASS/*.jpg, val/, test/) or '
      'image_folder. Never downloaded.', role='path')
  channels: int = settings.setting(
      1, 'Image channels: 1 (gray) or 3 (RGB); default the data set\'s '
      '(omniglot 1, mini_imagenet and image_folder 3).', flag_default=None)
  omniglot_dir: Optional[str] = settings.setting(
      None, 'Local copy of Omniglot (archives and/or extracted folders); '
      'default $OMNIGLOT_DIR, else TFDS downloads it.', role='path')
  data_dir: Optional[str] = settings.setting(None, 'TFDS data directory.',
                                    role='path')
  split: str = settings.setting('lake', 'Class split protocol.', choices=settings.SPLITS,
                       record=True)
  split_dir: Optional[str] = settings.setting(
      None, 'Directory with train.txt/val.txt/test.txt (split=vinyals); '
      'default: splits/vinyals/ of the local Omniglot copy (--omniglot_dir '
      'or $OMNIGLOT_DIR), where there is one.')
  minimal_subset: str = settings.setting('small1',
                                'Background subset for split=minimal.',
                                choices=settings.MINIMAL_SUBSETS)
  rotations: bool = settings.setting(
      False, 'Add 90/180/270 degree rotations of meta-train classes as '
      'classes.')
  rotated_alphabets: bool = settings.setting(
      False, 'Omniglot, with rotation classes (--rotations, or '
      '--split=vinyals): every rotation of an alphabet is an alphabet of its '
      'own, so within-alphabet episodes keep one orientation.', record=True)
  image_size: int = settings.setting(
      28, 'Image side in pixels; default the data set\'s (omniglot 28, '
      'mini_imagenet and image_folder 84).', flag_default=None)

  @property
  def inverted(self) -> bool:
    """Whether images are inverted (Omniglot: dark strokes on white become
    strokes = 1 on 0); natural images are kept as they are."""
    return self.dataset == 'omniglot'

  def validate(self) -> 'DataConfig':
    settings.check(self.dataset in settings.DATASETS, 'dataset', self.dataset,
           f'must be one of {settings.DATASETS}')
    settings.check(self.channels in (1, 3), 'channels', self.channels,
           'must be 1 or 3')
    if self.dataset == 'omniglot':
      settings.check(self.channels == 1, 'channels', self.channels,
             'must be 1 for dataset=omniglot (grayscale drawings)')
    else:
      settings.check(bool(self.data_root), 'data_root', self.data_root,
             f'is required when dataset={self.dataset} (no download)')
      settings.check(not self.rotations, 'rotations', self.rotations,
             'only applies to dataset=omniglot')
    settings.check(self.split in settings.SPLITS, 'split', self.split,
           f'must be one of {settings.SPLITS}')
    settings.check(self.minimal_subset in settings.MINIMAL_SUBSETS, 'minimal_subset',
           self.minimal_subset, f'must be one of {settings.MINIMAL_SUBSETS}')
    if self.split == 'vinyals':
      settings.check(bool(self.split_dir), 'split_dir', self.split_dir,
             'is required when split=vinyals')
    settings.check(not self.rotated_alphabets or (
        self.dataset == 'omniglot' and
        (self.rotations or self.split == 'vinyals')), 'rotated_alphabets',
                   self.rotated_alphabets,
                   'needs rotation classes: --rotations or --split=vinyals '
                   '(Omniglot)')
    settings.positive_int('image_size', self.image_size)
    settings.check(self.image_size >= 4, 'image_size', self.image_size, 'must be >= 4')
    return self


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
  """Episode shape (N ways, K shots, Q queries per class) and protocol.

  Attributes:
    episode_classes: `any` (N classes from the whole pool) or
      `within_alphabet` (all N from one alphabet, drawn uniformly among the
      alphabets with at least N classes: Lake et al.'s one-shot runs; needs
      a pool that knows its alphabets, i.e. Omniglot), or `mixed` (each
      episode one or the other with probability 1/2).
    train_episode_classes: the meta-train episodes' classes when they
      differ from the evaluation episodes' (`same`: as `episode_classes`),
      e.g. training on `mixed` episodes for a `within_alphabet` test.
    distinct_drawers: K drawers and Q other drawers are drawn per episode;
      every class's support drawings are by the first, its queries by the
      others (Lake et al.: the support and the query drawings of a
      character are by different people). Needs a local Omniglot copy,
      whose file names say the drawer.
    augment: meta-train episodes only: every support and query image
      rotated, zoomed, shifted and sheared at random, each uniformly in
      the range below (`image_ops.random_affine`). Evaluation episodes
      are never augmented.
    augment_rotation: with `augment`, rotations in +-this many degrees.
    augment_zoom: with `augment`, zoom factors in 1 +- this.
    augment_shift: with `augment`, shifts per axis in +-this fraction of
      the side.
    augment_shear: with `augment`, shear factors per axis drawn in
      [-augment_shear, augment_shear] (0: none).
    Each range has its own draw: changing one leaves the others' as they
    were, so the defaults give the images they always gave.
  """
  num_ways: int = settings.setting(5, 'N classes per episode.', record=True)
  num_shots: int = settings.setting(1, 'K support examples per class.', record=True)
  num_queries: int = settings.setting(15, 'Q query examples per class.', record=True)
  episode_classes: str = settings.setting(
      'any', 'any: N classes from all of the pool; within_alphabet: all N '
      'from one Omniglot alphabet (Lake et al.\'s one-shot runs); mixed: '
      'each episode one or the other, with probability 1/2.',
      choices=settings.EPISODE_CLASSES, record=True)
  train_episode_classes: str = settings.setting(
      'same', 'The meta-train episodes\' classes (same: as '
      '--episode_classes; any, within_alphabet, mixed: as there). '
      'Validation and test episodes follow --episode_classes.',
      choices=settings.TRAIN_EPISODE_CLASSES, record=True)
  distinct_drawers: bool = settings.setting(
      False, 'Omniglot: support and query drawings of a class by different '
      'people (K support drawers, Q others, per episode; Lake et al.). '
      'Needs a local copy (--omniglot_dir).', record=True)
  augment: bool = settings.setting(
      False, 'Meta-train episodes only: rotate, zoom, shift (and shear) '
      'every image at random, within --augment_rotation, --augment_zoom, '
      '--augment_shift (--augment_shear). Evaluation is never augmented.',
      record=True)
  augment_rotation: float = settings.setting(
      10.0, 'With --augment, rotations drawn uniformly in +-this many '
      'degrees.', record=True)
  augment_zoom: float = settings.setting(
      0.1, 'With --augment, zoom factors drawn uniformly in 1 +- this.',
      record=True)
  augment_shift: float = settings.setting(
      0.1, 'With --augment, shifts per axis drawn uniformly in +-this '
      'fraction of the image side.', record=True)
  augment_shear: float = settings.setting(
      0.0, 'With --augment, also shear every image by factors drawn '
      'uniformly in [-augment_shear, augment_shear] per axis (Koch et al.: '
      '0.3); 0: no shear.', record=True)

  def validate(self) -> 'EpisodeConfig':
    settings.check(self.episode_classes in settings.EPISODE_CLASSES, 'episode_classes',
           self.episode_classes, f'must be one of {settings.EPISODE_CLASSES}')
    settings.check(self.train_episode_classes in settings.TRAIN_EPISODE_CLASSES,
                   'train_episode_classes', self.train_episode_classes,
                   f'must be one of {settings.TRAIN_EPISODE_CLASSES}')
    settings.positive_int('num_ways', self.num_ways)
    settings.check(self.num_ways >= 2, 'num_ways', self.num_ways, 'must be >= 2')
    settings.positive_int('num_shots', self.num_shots)
    settings.positive_int('num_queries', self.num_queries)
    defaults = EpisodeConfig(self.num_ways, self.num_shots, self.num_queries)
    for name, high in (('augment_rotation', 45), ('augment_zoom', 0.5),
                       ('augment_shift', 0.5), ('augment_shear', 1)):
      value = getattr(self, name)
      settings.check(0 <= value <= high, name, value, f'must be in [0, {high}]')
      settings.check(self.augment or value == getattr(defaults, name), name,
                     value, 'needs --augment')
    return self

  def affine_ranges(self) -> Tuple[float, float, float, float]:
    """(rotation degrees, zoom change, shift fraction, shear): the ranges of
    `augment`, in the order of `image_ops.AffineRanges`."""
    return (self.augment_rotation, self.augment_zoom, self.augment_shift,
            self.augment_shear)

  def for_training(self) -> 'EpisodeConfig':
    """The meta-train episodes' config: `train_episode_classes` resolved."""
    if self.train_episode_classes == 'same':
      return self
    return dataclasses.replace(self, episode_classes=self.train_episode_classes,
                               train_episode_classes='same')
