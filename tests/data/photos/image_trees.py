"""Small generated image trees in the layouts the photograph sources read.

Random images, a few classes per split; each class's images mix RGB JPEGs,
RGB PNGs and grayscale PNGs, so every tree also exercises the conversion.
"""

import csv
import io
import os
from typing import Dict, Sequence

import numpy as np
from PIL import Image

# (split folder / CSV name, class labels): 4 / 2 / 2 classes.
SPLITS = (('train', ('n001', 'n002', 'n003', 'n004')),
          ('val', ('n101', 'n102')),
          ('test', ('n201', 'n202')))


def image_bytes(rng: np.random.Generator, index: int, side: int = 24) -> tuple:
  """(extension, encoded bytes) of a random image; the format cycles
  through RGB JPEG, RGB PNG and grayscale PNG."""
  kind = index % 3
  if kind == 2:
    image = Image.fromarray(rng.integers(0, 256, (side, side), np.uint8), 'L')
  else:
    image = Image.fromarray(rng.integers(0, 256, (side, side + 4, 3),
                                         np.uint8), 'RGB')
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG' if kind == 0 else 'PNG')
  return ('.jpg' if kind == 0 else '.png'), buffer.getvalue()


def write_csv_tree(root: str, per_class: int = 6, seed: int = 0,
                   splits: Sequence = SPLITS) -> Dict[str, list]:
  """images/ + train.csv, val.csv, test.csv. Returns {split: rows}."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, 'images'), exist_ok=True)
  all_rows = {}
  for split, labels in splits:
    rows = []
    for label in labels:
      for i in range(per_class):
        ext, data = image_bytes(rng, i)
        name = f'{label}{i:08d}{ext}'
        with open(os.path.join(root, 'images', name), 'wb') as f:
          f.write(data)
        rows.append((name, label))
    with open(os.path.join(root, f'{split}.csv'), 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(('filename', 'label'))
      writer.writerows(rows)
    all_rows[split] = rows
  return all_rows


def write_folder_tree(root: str, per_class: int = 6, seed: int = 0,
                      splits: Sequence = SPLITS) -> None:
  """root/{train,val,test}/CLASS/*.jpg|png."""
  rng = np.random.default_rng(seed)
  for split, labels in splits:
    for label in labels:
      class_dir = os.path.join(root, split, label)
      os.makedirs(class_dir, exist_ok=True)
      for i in range(per_class):
        ext, data = image_bytes(rng, i)
        with open(os.path.join(class_dir, f'{i:04d}{ext}'), 'wb') as f:
          f.write(data)
