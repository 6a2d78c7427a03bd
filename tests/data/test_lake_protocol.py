"""Lake et al.'s one-shot protocol: within-alphabet classes, distinct drawers.

Synthetic pools whose pixel values encode (class, drawing); the real Omniglot
copy is tested in `test_lake_protocol_integration.py`.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import episodes


def _pool(alphabet_sizes=(3, 6, 8, 2), num_drawings=6, seed=0):
  """Pixel of image (c, d) = c * D + d; alphabets a0, a1, ... of the given
  sizes; the drawers of each class in a random order."""
  num_classes = sum(alphabet_sizes)
  ids = np.arange(num_classes * num_drawings, dtype=np.float32).reshape(
      num_classes, num_drawings, 1, 1, 1)
  alphabets = tuple(f'a{i}' for i, n in enumerate(alphabet_sizes)
                    for _ in range(n))
  rng = np.random.default_rng(seed)
  drawers = np.stack([rng.permutation(num_drawings)
                      for _ in range(num_classes)]).astype(np.int32)
  return class_pools.ClassPool(
      tf.constant(np.broadcast_to(ids, (num_classes, num_drawings, 2, 2, 1))),
      tuple(f'{a}/character{c:02d}' for c, a in enumerate(alphabets)),
      alphabets=alphabets, drawers=drawers)


def _class_and_drawing(images, num_drawings):
  ids = np.asarray(images)[:, 0, 0, 0].astype(np.int64)
  return ids // num_drawings, ids % num_drawings


class LakeProtocolTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(('within_alphabet', False),
                            ('any', True), ('within_alphabet', True))
  def test_episodes_follow_the_protocol(self, classes, drawers):
    pool = _pool()
    ways, shots, queries = 5, 2, 3
    episode_config = config.EpisodeConfig(
        ways, shots, queries, episode_classes=classes,
        distinct_drawers=drawers)
    seen_alphabets = set()
    dataset = episodes.make_eval_dataset(pool, episode_config, 30, seed=1)
    for episode in dataset:
      support_class, support_drawing = _class_and_drawing(
          episode.support_images, 6)
      query_class, query_drawing = _class_and_drawing(episode.query_images, 6)
      classes_used = set(support_class) | set(query_class)
      self.assertLen(classes_used, ways)
      alphabets = {pool.alphabets[c] for c in classes_used}
      if classes == 'within_alphabet':
        self.assertLen(alphabets, 1)
        # Only alphabets with >= 5 classes are eligible.
        self.assertIn(next(iter(alphabets)), ('a1', 'a2'))
      seen_alphabets |= alphabets
      support_drawers = {pool.drawers[c, d]
                         for c, d in zip(support_class, support_drawing)}
      query_drawers = {pool.drawers[c, d]
                       for c, d in zip(query_class, query_drawing)}
      if drawers:
        self.assertLen(support_drawers, shots)
        self.assertLen(query_drawers, queries)
        self.assertEmpty(support_drawers & query_drawers)
      # Labels still index the classes consistently.
      for label, c in zip(episode.support_labels.numpy(), support_class):
        same = query_class[episode.query_labels.numpy() == label]
        self.assertTrue(np.all(same == c))
    if classes == 'within_alphabet':
      self.assertEqual(seen_alphabets, {'a1', 'a2'})

  def _alphabets_per_episode(self, pool, dataset):
    counts = []
    for batch in dataset:
      images = np.reshape(batch.support_images,
                          (-1,) + tuple(batch.support_images.shape[-3:]))
      classes, _ = _class_and_drawing(images, 6)
      counts.append(len({pool.alphabets[c] for c in classes}))
    return np.array(counts)

  def test_training_episodes_follow_train_episode_classes(self):
    pool = _pool(alphabet_sizes=(6, 6, 6, 6))
    episode_config = config.EpisodeConfig(
        5, 1, 2, train_episode_classes='within_alphabet')
    train = self._alphabets_per_episode(
        pool, episodes.make_episode_dataset(pool, episode_config, 1, 3).take(
            40))
    self.assertTrue(np.all(train == 1))
    # Validation and test episodes follow episode_classes ('any').
    valid = self._alphabets_per_episode(
        pool, episodes.make_eval_dataset(pool, episode_config, 40, 3))
    self.assertGreater(valid.mean(), 2.0)
    # 'same' (the default) trains on episode_classes' episodes, unchanged.
    within = config.EpisodeConfig(5, 1, 2, episode_classes='within_alphabet')
    for a, b in zip(
        episodes.make_episode_dataset(pool, within, 2, 3).take(3),
        episodes.make_episode_dataset(
            pool, config.EpisodeConfig(
                5, 1, 2, episode_classes='within_alphabet',
                train_episode_classes='same'), 2, 3).take(3)):
      for u, v in zip(a, b):
        self.assertAllEqual(u, v)

  def test_mixed_episodes_are_half_within_one_alphabet(self):
    pool = _pool(alphabet_sizes=(6, 6, 6, 6))
    mixed = config.EpisodeConfig(5, 1, 2, episode_classes='mixed')
    counts = self._alphabets_per_episode(
        pool, episodes.make_eval_dataset(pool, mixed, 400, 5))
    # Among 'any' episodes, 5 of 24 classes from one alphabet: p = 0.0006.
    self.assertBetween(np.mean(counts == 1), 0.43, 0.57)
    self.assertTrue(np.all(counts[counts > 1] >= 2))
    # Too few classes per alphabet: refused, naming the option.
    with self.assertRaisesRegex(ValueError, 'meta_train.*mixed.*no alphabet'):
      episodes.make_episode_dataset(
          pool, config.EpisodeConfig(7, 1, 2, train_episode_classes='mixed'),
          1, 0)

  def test_default_options_leave_the_episodes_unchanged(self):
    pool = _pool()
    plain = class_pools.ClassPool(pool.images, pool.class_names)
    episode_config = config.EpisodeConfig(4, 1, 2)
    a = list(episodes.make_eval_dataset(pool, episode_config, 3, seed=2))
    b = list(episodes.make_eval_dataset(plain, episode_config, 3, seed=2))
    for x, y in zip(a, b):
      for u, v in zip(x, y):
        self.assertAllEqual(u, v)

  def test_pools_that_cannot_serve_the_protocol_are_named(self):
    pool = _pool()
    with self.assertRaisesRegex(ValueError, 'meta_test.*no alphabet has'):
      episodes.validate_episode_config(
          pool, config.EpisodeConfig(9, 1, 2,
                                     episode_classes='within_alphabet'),
          'meta_test')
    plain = class_pools.ClassPool(pool.images, pool.class_names)
    with self.assertRaisesRegex(ValueError, 'meta_valid.*alphabets'):
      episodes.validate_episode_config(
          plain, config.EpisodeConfig(2, 1, 2,
                                      episode_classes='within_alphabet'),
          'meta_valid')
    with self.assertRaisesRegex(ValueError, 'meta_valid.*drawer'):
      episodes.validate_episode_config(
          plain, config.EpisodeConfig(2, 1, 2, distinct_drawers=True),
          'meta_valid')

  def test_photograph_data_sets_reject_the_options(self):
    data = config.DataConfig(dataset='image_folder', data_root='/x',
                             channels=3, image_size=28)
    learner = config.LearnerConfig(channels=3)
    for episode in (config.EpisodeConfig(episode_classes='within_alphabet'),
                    config.EpisodeConfig(train_episode_classes='mixed'),
                    config.EpisodeConfig(distinct_drawers=True)):
      with self.assertRaisesRegex(ValueError, 'dataset=omniglot'):
        config.ExperimentConfig(data=data, episode=episode,
                                learner=learner).validate()


if __name__ == '__main__':
  tf.test.main()
