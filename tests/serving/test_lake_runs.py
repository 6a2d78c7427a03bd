"""export/lake_runs.py: its episodes follow Lake et al.'s runs (one
alphabet, support and query by two different drawers, labels consistent),
shown with an oracle and a guessing classifier on a synthetic tree."""

import importlib.util
import os
import tempfile

import numpy as np
import tensorflow as tf

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'export', 'lake_runs.py')


def _load():
  spec = importlib.util.spec_from_file_location('lake_runs', _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _write_tree(root, alphabet_sizes):
  """PNG pixel (0, 0) = alphabet, (0, 1) = character, (0, 2) = drawer."""
  for a, size in enumerate(alphabet_sizes):
    for c in range(size):
      folder = os.path.join(root, 'images_evaluation', f'alpha{a}',
                            f'character{c + 1:02d}')
      os.makedirs(folder)
      for drawer in range(1, 21):
        pixels = np.full((6, 6, 1), 255, np.uint8)
        pixels[0, :3, 0] = (a, c, drawer)
        with open(os.path.join(folder, f'{a * 100 + c:04d}_{drawer:02d}.png'),
                  'wb') as f:
          f.write(tf.io.encode_png(pixels).numpy())


def _decode(images):
  return np.stack([tf.io.decode_png(x).numpy()[0, :3, 0] for x in images])


class LakeRunsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    # alpha1 is too small for 4-way runs and never used.
    _write_tree(self.root, (5, 3, 6))
    self.lake_runs = _load()
    self.seen = []

  def _oracle(self, support_images, support_labels, query_images):
    support, query = _decode(support_images.numpy()), _decode(
        query_images.numpy())
    self.seen.append((support, query))
    by_character = {c: label for (_, c, _), label in
                    zip(support, support_labels.numpy())}
    classes = np.array([by_character[c] for _, c, _ in query])
    return {'classes': tf.constant(classes)}

  def test_oracle_is_always_right_and_episodes_follow_the_protocol(self):
    result = self.lake_runs.score_with(self._oracle, self.root, 40, seed=3,
                                       ways=4)
    self.assertEqual(result['accuracy'], 1.0)
    self.assertEqual(result['alphabets'], 2)
    alphabets_used = set()
    for support, query in self.seen:
      self.assertLen(set(support[:, 0]) | set(query[:, 0]), 1)
      alphabets_used.add(support[0, 0])
      self.assertLen(set(support[:, 1]), 4)  # Four characters,
      self.assertEqual(set(support[:, 1]), set(query[:, 1]))  # the same,
      self.assertLen(set(support[:, 2]), 1)  # one drawer for the support,
      self.assertLen(set(query[:, 2]), 1)  # another for the queries.
      self.assertNotEqual(support[0, 2], query[0, 2])
    self.assertEqual(alphabets_used, {0, 2})

  def test_guessing_scores_chance(self):
    rng = np.random.default_rng(0)
    guess = lambda support_images, support_labels, query_images: {
        'classes': tf.constant(rng.integers(0, 4, len(query_images)))}
    result = self.lake_runs.score_with(guess, self.root, 300, seed=3, ways=4)
    self.assertBetween(result['accuracy'], 0.2, 0.3)
    self.assertGreater(result['ci95'], 0.0)


if __name__ == '__main__':
  tf.test.main()
