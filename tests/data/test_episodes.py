"""Tests for meta_lstm_tf.data.episodes and benchmarks.pipeline (synthetic
pools)."""

import hashlib
import os
import subprocess
import sys
import textwrap
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config
from meta_lstm_tf import types
from meta_lstm_tf.benchmarks import pipeline
from meta_lstm_tf.data import class_pools
from meta_lstm_tf.data import datasets
from meta_lstm_tf.data import episodes

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _id_pool(num_classes=12, num_drawings=8, side=3):
  """A pool whose every pixel of image (c, d) equals c * D + d."""
  ids = np.arange(num_classes * num_drawings, dtype=np.float32).reshape(
      num_classes, num_drawings, 1, 1, 1)
  images = np.broadcast_to(ids, (num_classes, num_drawings, side, side, 1))
  return class_pools.ClassPool(
      tf.constant(images),
      tuple(f'a/character{c:02d}' for c in range(num_classes)))


def _ids(images, num_drawings):
  """(class, drawing) pairs of id-pool images [..., H, W, 1]."""
  ids = np.asarray(images)[..., 0, 0, 0].astype(np.int64)
  return ids // num_drawings, ids % num_drawings


def _digest(episode):
  digest = hashlib.sha256()
  for tensor in episode:
    digest.update(np.asarray(tensor).tobytes())
  return digest.hexdigest()


class SampleEpisodeTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters((5, 1, 15), (5, 5, 3), (12, 2, 6), (2, 7, 1))
  def test_invariants(self, num_ways, num_shots, num_queries):
    pool = _id_pool(num_classes=12, num_drawings=8 if num_queries < 15 else 16)
    num_drawings = pool.images.shape[1]
    episode_config = config.EpisodeConfig(num_ways, num_shots, num_queries)
    for index in range(10):
      episode = episodes.sample_episode(
          pool.images, episode_config, tf.constant([3, index], tf.int64))
      self.assertIsInstance(episode, types.Episode)
      self.assertEqual(episode.support_images.shape,
                       [num_ways * num_shots, 3, 3, 1])
      self.assertEqual(episode.query_images.shape,
                       [num_ways * num_queries, 3, 3, 1])
      self.assertEqual(episode.support_labels.dtype, tf.int32)
      support_labels = episode.support_labels.numpy()
      query_labels = episode.query_labels.numpy()
      self.assertAllEqual(np.bincount(support_labels, minlength=num_ways),
                          [num_shots] * num_ways)
      self.assertAllEqual(np.bincount(query_labels, minlength=num_ways),
                          [num_queries] * num_ways)
      s_class, s_draw = _ids(episode.support_images, num_drawings)
      q_class, q_draw = _ids(episode.query_images, num_drawings)
      label_to_class = {}
      for label, cls in zip(np.concatenate([support_labels, query_labels]),
                            np.concatenate([s_class, q_class])):
        self.assertEqual(label_to_class.setdefault(label, cls), cls)
      # Distinct classes per label.
      self.assertLen(set(label_to_class.values()), num_ways)
      # Support and query never share an image; no image repeats.
      images = set(zip(s_class, s_draw)) | set(zip(q_class, q_draw))
      self.assertLen(images, num_ways * (num_shots + num_queries))

  def test_label_assignment_and_order_vary(self):
    pool = _id_pool()
    episode_config = config.EpisodeConfig(5, 2, 2)
    class_of_label0, orders = set(), set()
    for index in range(20):
      episode = episodes.sample_episode(pool.images, episode_config,
                                        tf.constant([0, index]))
      class_of_label0.add(int(_ids(episode.support_images, 8)[0][
          episode.support_labels.numpy() == 0][0]))
      orders.add(tuple(episode.support_labels.numpy()))
    self.assertGreater(len(class_of_label0), 3)
    self.assertGreater(len(orders), 10)

  def test_graph_matches_eager(self):
    pool = _id_pool()
    episode_config = config.EpisodeConfig(5, 1, 3)
    seed = tf.constant([7, 8], tf.int32)
    eager = episodes.sample_episode(pool.images, episode_config, seed)
    graph = tf.function(
        lambda s: episodes.sample_episode(pool.images, episode_config, s))(seed)
    for a, b in zip(eager, graph):
      self.assertAllEqual(a, b)


class EpisodeDatasetTest(tf.test.TestCase, parameterized.TestCase):

  def _take(self, dataset, n):
    return [tuple(t.numpy() for t in x) for x in dataset.take(n)]

  def test_batched_shapes(self):
    dataset = episodes.make_episode_dataset(
        _id_pool(), config.EpisodeConfig(5, 2, 3), meta_batch_size=4, seed=0)
    self.assertEqual(dataset.element_spec.support_images.shape,
                     [4, 10, 3, 3, 1])
    self.assertEqual(dataset.element_spec.query_labels.shape, [4, 15])
    episode = next(iter(dataset))
    self.assertIsInstance(episode, types.Episode)
    self.assertEqual(episode.query_images.shape, [4, 15, 3, 3, 1])

  def test_same_seed_same_episodes_different_seed_different(self):
    pool, episode_config = _id_pool(), config.EpisodeConfig(5, 1, 2)
    a = self._take(episodes.make_episode_dataset(pool, episode_config, 2, 5),
                   4)
    b = self._take(episodes.make_episode_dataset(pool, episode_config, 2, 5),
                   4)
    c = self._take(episodes.make_episode_dataset(pool, episode_config, 2, 6),
                   4)
    self.assertEqual([_digest(x) for x in a], [_digest(x) for x in b])
    self.assertNotEqual([_digest(x) for x in a], [_digest(x) for x in c])
    # Different indices give different episodes.
    self.assertLen({_digest(x) for x in a}, 4)

  def test_training_episodes_are_the_configs_episodes(self):
    # The API's helper leaves an unnamed range at EpisodeConfig's default
    # and passes a named one through: the CLI's episodes either way.
    pool = class_pools.ClassPool(
        tf.constant(np.random.default_rng(1).random((12, 8, 12, 12, 1),
                                                    np.float32)),
        tuple(f'a/character{c:02d}' for c in range(12)))
    digests = {}
    for name, options in (('default', {}), ('zoom', {'augment_zoom': 0.3})):
      api = datasets.training_episodes(pool, num_ways=5, num_queries=3,
                                       batch_size=2, seed=4, augment=True,
                                       **options)
      cli = episodes.make_episode_dataset(
          pool, config.EpisodeConfig(5, 1, 3, augment=True, **options), 2, 4)
      digests[name] = [_digest(x) for x in self._take(api, 2)]
      self.assertEqual(digests[name], [_digest(x) for x in self._take(cli, 2)])
    self.assertNotEqual(digests['default'], digests['zoom'])

  def test_augment_changes_pixels_not_drawings(self):
    rng = np.random.default_rng(0)
    pool = class_pools.ClassPool(
        tf.constant(rng.random((12, 8, 12, 12, 1), np.float32)),
        tuple(f'a/character{c:02d}' for c in range(12)))
    plain_config = config.EpisodeConfig(5, 1, 3)
    augment_config = config.EpisodeConfig(5, 1, 3, augment=True)
    plain = self._take(episodes.make_episode_dataset(pool, plain_config, 2, 4),
                       3)
    augmented = self._take(
        episodes.make_episode_dataset(pool, augment_config, 2, 4), 3)
    again = self._take(
        episodes.make_episode_dataset(pool, augment_config, 2, 4), 3)
    self.assertEqual([_digest(x) for x in augmented],
                     [_digest(x) for x in again])
    images = pool.images.numpy().reshape(96, 12, 12, 1)
    for p, a in zip(plain, augmented):
      self.assertAllEqual(p[1], a[1])  # Same labels,
      self.assertAllEqual(p[3], a[3])
      for plain_images, augmented_images in ((p[0], a[0]), (p[2], a[2])):
        for plain_image, augmented_image in zip(
            plain_images.reshape(-1, 12, 12, 1),
            augmented_images.reshape(-1, 12, 12, 1)):
          # ... the same drawing, warped: its own warp of the plain image.
          self.assertNotAllClose(plain_image, augmented_image)
          self.assertTrue(np.any(np.all(images == plain_image, axis=(1, 2,
                                                                     3))))
    # Shear: the same drawings and labels, other pixels, still in [0, 1].
    sheared = self._take(episodes.make_episode_dataset(
        pool, config.EpisodeConfig(5, 1, 3, augment=True, augment_shear=0.3),
        2, 4), 3)
    for a, s in zip(augmented, sheared):
      self.assertAllEqual(a[1], s[1])
      self.assertAllEqual(a[3], s[3])
      self.assertNotAllClose(a[0], s[0])
      for images_ in (a[0], a[2], s[0], s[2]):
        self.assertGreaterEqual(images_.min(), 0.0)
        self.assertLessEqual(images_.max(), 1.0)
    with self.assertRaisesRegex(ValueError, 'augment_shear=0.3: needs'):
      config.EpisodeConfig(5, 1, 3, augment_shear=0.3).validate()
    # Wider ranges: the same drawings and labels, other pixels; all ranges 0
    # gives the plain images back.
    wider = self._take(episodes.make_episode_dataset(
        pool, config.EpisodeConfig(5, 1, 3, augment=True, augment_zoom=0.2,
                                   augment_rotation=20.0), 2, 4), 3)
    still = self._take(episodes.make_episode_dataset(
        pool, config.EpisodeConfig(5, 1, 3, augment=True, augment_zoom=0.0,
                                   augment_rotation=0.0, augment_shift=0.0),
        2, 4), 3)
    for p, a, w, z in zip(plain, augmented, wider, still):
      self.assertAllEqual(a[1], w[1])
      self.assertAllEqual(a[3], w[3])
      self.assertNotAllClose(a[0], w[0])
      self.assertAllClose(p[0], z[0], atol=1e-5)
      self.assertAllClose(p[2], z[2], atol=1e-5)
    for name, value, message in (
        ('augment_zoom', 0.2, 'needs --augment'),
        ('augment_shift', 0.6, r'must be in \[0, 0.5\]'),
        ('augment_rotation', -1.0, r'must be in \[0, 45\]')):
      with self.assertRaisesRegex(ValueError, f'{name}={value}: {message}'):
        config.EpisodeConfig(5, 1, 3, augment=name != 'augment_zoom',
                             **{name: value}).validate()
    # Evaluation episodes are never augmented.
    plain_eval = self._take(
        episodes.make_eval_dataset(pool, plain_config, 3, 4), 3)
    augment_eval = self._take(
        episodes.make_eval_dataset(pool, augment_config, 3, 4), 3)
    self.assertEqual([_digest(x) for x in plain_eval],
                     [_digest(x) for x in augment_eval])

  @parameterized.parameters(1, 3)
  def test_resume_equals_uninterrupted(self, meta_batch_size):
    pool, episode_config = _id_pool(), config.EpisodeConfig(4, 1, 2)
    full = self._take(episodes.make_episode_dataset(
        pool, episode_config, meta_batch_size, seed=11), 6)
    step = 4
    resumed = self._take(episodes.make_episode_dataset(
        pool, episode_config, meta_batch_size, seed=11,
        start_index=step * meta_batch_size), 2)
    self.assertEqual([_digest(x) for x in full[step:]],
                     [_digest(x) for x in resumed])

  def test_episode_depends_only_on_index(self):
    pool, episode_config = _id_pool(), config.EpisodeConfig(4, 1, 2)
    batched = self._take(episodes.make_episode_dataset(
        pool, episode_config, 3, seed=2), 2)
    single = self._take(episodes.make_episode_dataset(
        pool, episode_config, 1, seed=2), 6)
    for i in range(6):
      batch, row = divmod(i, 3)
      self.assertEqual(_digest(x[row] for x in batched[batch]),
                       _digest(single[i]))

  def test_eval_dataset_is_finite_and_deterministic(self):
    pool, episode_config = _id_pool(), config.EpisodeConfig(5, 1, 3)
    a = self._take(episodes.make_eval_dataset(pool, episode_config, 7, 1), 100)
    b = self._take(episodes.make_eval_dataset(pool, episode_config, 7, 1), 100)
    self.assertLen(a, 7)
    self.assertEqual([_digest(x) for x in a], [_digest(x) for x in b])
    self.assertEqual(a[0][0].shape, (5, 3, 3, 1))  # Unbatched.
    # Evaluation and training streams differ for the same seed.
    train = self._take(
        episodes.make_episode_dataset(pool, episode_config, 1, 1), 1)
    self.assertNotEqual(_digest(train[0]), _digest(a[0]))
    # A prefix of a longer evaluation run is the shorter run.
    longer = self._take(episodes.make_eval_dataset(pool, episode_config, 9, 1),
                        100)
    self.assertEqual([_digest(x) for x in a], [_digest(x) for x in longer[:7]])

  def test_eval_episodes_identical_in_a_fresh_process(self):
    pool, episode_config = _id_pool(), config.EpisodeConfig(5, 2, 3)
    here = [_digest(x) for x in self._take(
        episodes.make_eval_dataset(pool, episode_config, 3, 42), 3)]
    script = textwrap.dedent("""
        import hashlib
        import numpy as np
        from meta_lstm_tf import config
        from meta_lstm_tf.data import class_pools, episodes
        ids = np.arange(96, dtype=np.float32).reshape(12, 8, 1, 1, 1)
        pool = class_pools.ClassPool(np.broadcast_to(ids, (12, 8, 3, 3, 1)), ())
        for x in episodes.make_eval_dataset(
            pool, config.EpisodeConfig(5, 2, 3), 3, 42):
          d = hashlib.sha256()
          for t in x:
            d.update(t.numpy().tobytes())
          print(d.hexdigest())
        """)
    env = dict(os.environ, PYTHONPATH=_REPO_ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, '-c', script], env=env,
                            capture_output=True, text=True, timeout=300,
                            check=True)
    self.assertEqual(result.stdout.split(), here)

  @parameterized.named_parameters(
      ('too_many_ways', config.EpisodeConfig(13, 1, 1),
       r'meta_train: num_ways=13 exceeds the 12 classes'),
      ('too_many_drawings', config.EpisodeConfig(5, 4, 5),
       r'num_shots \+ num_queries = 4 \+ 5 = 9 exceeds the 8 drawings'),
      ('invalid_config', config.EpisodeConfig(1, 1, 1), r'num_ways=1'),
  )
  def test_errors_name_values(self, episode_config, message):
    with self.assertRaisesRegex(ValueError, message):
      episodes.make_episode_dataset(_id_pool(), episode_config, 1, 0)

  def test_seed_forms(self):
    pool, episode_config = _id_pool(), config.EpisodeConfig(5, 1, 2)
    digests = [
        _digest(self._take(
            episodes.make_eval_dataset(pool, episode_config, 1, seed), 1)[0])
        for seed in ([3, 4], np.array([3, 4], np.int32),
                     tf.constant([3, 4], tf.int64), 3)]
    self.assertLen(set(digests[:3]), 1)
    self.assertNotEqual(digests[0], digests[3])
    with self.assertRaisesRegex(ValueError, 'seed'):
      episodes.make_eval_dataset(pool, episode_config, 1, [1, 2, 3])

  def test_eval_error_names_pool(self):
    with self.assertRaisesRegex(ValueError, 'meta_valid: num_ways=20'):
      episodes.make_eval_dataset(_id_pool(), config.EpisodeConfig(20, 1, 1),
                                 5, 0, name='meta_valid')

  @parameterized.parameters(0, -1, 2.0)
  def test_bad_meta_batch_size(self, value):
    with self.assertRaisesRegex(ValueError, 'meta_batch_size'):
      episodes.make_episode_dataset(_id_pool(), config.EpisodeConfig(5, 1, 2),
                                    value, 0)


class BenchmarkLibTest(tf.test.TestCase):

  def test_reports_both_keys(self):
    pool = class_pools.ClassPool(tf.zeros([25, 20, 28, 28, 1]), ('x',) * 25)
    results = pipeline.pipeline_benchmarks(pool, num_episodes=50)
    self.assertCountEqual(
        results,
        ['pipeline_episodes_per_sec_5w1s', 'pipeline_episodes_per_sec_20w5s'])
    for value in results.values():
      self.assertGreater(value, 0)

  def test_needs_a_local_copy(self):
    # The library never reads OMNIGLOT_DIR: the binary resolves it.
    with mock.patch.dict(os.environ, {'OMNIGLOT_DIR': '/somewhere'}):
      with self.assertRaisesRegex(ValueError,
                                  'omniglot_dir=None: the pipeline benchmark'):
        pipeline.pipeline_benchmark(None)


if __name__ == '__main__':
  tf.test.main()
