"""Scores an adapt-and-classify SavedModel on Lake et al.'s one-shot task,
from raw drawings as they are on disk, independently of meta_lstm_tf's
episode sampler (this script does not import the package).

Episode (Lake et al., Science 2015): an alphabet of the evaluation set with
at least 20 characters, 20 of its characters, two different drawers; the
support drawing of each character is the first drawer's, its query the
second's (20 queries, one per character). The PNG files (105 x 105, black
strokes on white) go unchanged to the `encoded_images` signature.

  python export/lake_runs.py --export_dir=RUN/export/1 \
      --omniglot_dir=../shared/data/omniglot --episodes=300

Prints one JSON object: accuracy, its 95% CI, episodes, seed.
"""

import argparse
import json
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

WAYS = 20


def evaluation_alphabets(omniglot_dir: str,
                         ways: int = WAYS) -> Dict[str, List[str]]:
  """Alphabet -> its character folders, for alphabets of >= `ways`."""
  root = os.path.join(omniglot_dir, 'images_evaluation')
  alphabets = {}
  for alphabet in sorted(os.listdir(root)):
    folder = os.path.join(root, alphabet)
    characters = sorted(os.path.join(folder, c) for c in os.listdir(folder))
    if len(characters) >= ways:
      alphabets[alphabet] = characters
  if not alphabets:
    raise SystemExit(f'error: no alphabet of {ways} characters under {root}')
  return alphabets


def drawing_by(character_folder: str, drawer: int) -> bytes:
  """The PNG bytes of the drawing by `drawer` (file name NNNN_DD.png)."""
  for name in os.listdir(character_folder):
    if name.endswith(f'_{drawer:02d}.png'):
      with open(os.path.join(character_folder, name), 'rb') as f:
        return f.read()
  raise SystemExit(f'error: no drawing by drawer {drawer} in '
                   f'{character_folder}')


def score(export_dir: str, omniglot_dir: str, episodes: int,
          seed: int) -> Dict[str, float]:
  """Accuracy of the SavedModel in `export_dir` on `episodes` runs."""
  classify = tf.saved_model.load(export_dir).signatures['encoded_images']
  return score_with(classify, omniglot_dir, episodes, seed)


def score_with(classify, omniglot_dir: str, episodes: int, seed: int,
               ways: int = WAYS) -> Dict[str, float]:
  """Accuracy of `classify` (the `encoded_images` signature's arguments
  and outputs) on `episodes` runs of `ways` characters."""
  alphabets = evaluation_alphabets(omniglot_dir, ways)
  names = sorted(alphabets)
  rng = np.random.default_rng(seed)
  accuracies = []
  for _ in range(episodes):
    characters = alphabets[names[rng.integers(len(names))]]
    chosen = rng.choice(len(characters), ways, replace=False)
    support_drawer, query_drawer = rng.choice(np.arange(1, 21), 2,
                                              replace=False)
    labels = rng.permutation(ways).astype(np.int32)
    order = rng.permutation(ways)
    support = [drawing_by(characters[c], support_drawer) for c in chosen]
    query = [drawing_by(characters[chosen[i]], query_drawer) for i in order]
    outputs = classify(support_images=tf.constant(support),
                       support_labels=tf.constant(labels),
                       query_images=tf.constant(query))
    accuracies.append(np.mean(outputs['classes'].numpy() == labels[order]))
  accuracies = np.asarray(accuracies)
  return {'accuracy': float(accuracies.mean()),
          'ci95': float(1.96 * accuracies.std(ddof=1) / np.sqrt(episodes)),
          'episodes': episodes, 'seed': seed, 'alphabets': len(names)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--export_dir', required=True)
  parser.add_argument('--omniglot_dir', required=True,
                      help='holds images_evaluation/ALPHABET/characterNN/')
  parser.add_argument('--episodes', type=int, default=300)
  parser.add_argument('--seed', type=int, default=2015)
  args = parser.parse_args()
  print(json.dumps(score(args.export_dir, args.omniglot_dir, args.episodes,
                         args.seed)))


if __name__ == '__main__':
  main()
