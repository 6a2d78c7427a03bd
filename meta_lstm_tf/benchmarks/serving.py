"""Raw Omniglot episodes as a serving client sends them, and the latency of
adapt-and-classify through a loaded SavedModel."""

import os
import tempfile
import time
import zipfile
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules
from meta_lstm_tf import types
from meta_lstm_tf.serving import export
from meta_lstm_tf.serving import modules
from meta_lstm_tf.serving import support as support_lib


def _omniglot_characters(omniglot_dir: str):
  """Evaluation-set characters of a local Omniglot copy, as raw PNG bytes.

  Reads the extracted `images_evaluation/` folder, else
  `images_evaluation.zip`.

  Returns:
    A list, one entry per character, of lists of PNG bytes loaders.
  """
  folder = os.path.join(omniglot_dir, 'images_evaluation')
  if os.path.isdir(folder):
    characters = []
    for alphabet in sorted(os.listdir(folder)):
      alphabet_dir = os.path.join(folder, alphabet)
      if not os.path.isdir(alphabet_dir):
        continue
      for character in sorted(os.listdir(alphabet_dir)):
        char_dir = os.path.join(alphabet_dir, character)
        files = sorted(os.path.join(char_dir, f) for f in os.listdir(char_dir)
                       if f.endswith('.png'))
        if files:
          characters.append([_file_loader(f) for f in files])
    if characters:
      return characters
  archive = os.path.join(omniglot_dir, 'images_evaluation.zip')
  if os.path.isfile(archive):
    with zipfile.ZipFile(archive) as zf:
      groups = {}
      for name in sorted(zf.namelist()):
        if name.endswith('.png'):
          groups.setdefault(os.path.dirname(name), []).append(name)
      return [[_zip_loader(archive, n) for n in names]
              for _, names in sorted(groups.items())]
  raise FileNotFoundError(f'no images_evaluation folder or archive in '
                          f'{omniglot_dir!r}')


def _file_loader(path):
  def load():
    with open(path, 'rb') as f:
      return f.read()
  return load


def _zip_loader(archive, name):
  def load():
    with zipfile.ZipFile(archive) as zf:
      return zf.read(name)
  return load


def sample_raw_episode(omniglot_dir: Optional[str],
                       episode_config: config_lib.EpisodeConfig,
                       seed: int = 0, image_side: int = 105,
                       encoded: bool = False):
  """An episode of raw images as a serving client would send it.

  The training pipeline (`data.episodes`) holds images already preprocessed
  for the learner; the served model takes natural images. This reads the
  original PNGs of Omniglot's evaluation set (or, with `omniglot_dir=None`,
  makes random images: latency does not depend on content).

  Args:
    omniglot_dir: local Omniglot copy, or None for synthetic images.
    episode_config: N, K, Q.
    seed: NumPy seed for the classes and drawings.
    image_side: side of the synthetic images.
    encoded: return PNG bytes instead of decoded images (Omniglot only).

  Returns:
    `types.Episode` of NumPy arrays: images float32 [X, H, W, 1] in [0, 1]
    (white background) or, if `encoded`, object arrays of PNG bytes; labels
    int32.
  """
  rng = np.random.default_rng(seed)
  n, k, q = (episode_config.num_ways, episode_config.num_shots,
             episode_config.num_queries)
  support_labels = np.repeat(np.arange(n, dtype=np.int32), k)
  query_labels = np.repeat(np.arange(n, dtype=np.int32), q)
  if omniglot_dir is None:
    if encoded:
      raise ValueError('encoded=True needs omniglot_dir')
    return types.Episode(
        rng.random((n * k, image_side, image_side, 1), np.float32),
        support_labels,
        rng.random((n * q, image_side, image_side, 1), np.float32),
        query_labels)
  characters = _omniglot_characters(omniglot_dir)
  chosen = rng.choice(len(characters), size=n, replace=False)
  support, query = [], []
  for index in chosen:
    loaders = characters[index]
    drawings = rng.choice(len(loaders), size=k + q, replace=False)
    data = [loaders[d]() for d in drawings]
    support.extend(data[:k])
    query.extend(data[k:])
  if encoded:
    return types.Episode(np.array(support, object), support_labels,
                         np.array(query, object), query_labels)
  decode = lambda items: np.stack(
      [support_lib.decode_image(b, 'omniglot') for b in items])
  return types.Episode(decode(support), support_labels, decode(query),
                       query_labels)


def _time_calls(fn, episodes, num_calls: int, warmup: int) -> np.ndarray:
  """Latencies in ms of `num_calls` calls, cycling through `episodes`."""
  for i in range(warmup):
    fn(**episodes[i % len(episodes)])['classes'].numpy()
  latencies = []
  for i in range(num_calls):
    inputs = episodes[i % len(episodes)]
    start = time.perf_counter()
    fn(**inputs)['classes'].numpy()
    latencies.append((time.perf_counter() - start) * 1e3)
  return np.asarray(latencies)


def serving_latency_benchmark(omniglot_dir: Optional[str] = None,
                              num_calls: int = 60, warmup: int = 5,
                              num_episodes: int = 10,
                              inner_steps: int = 8,
                              meta_learner: Optional[
                                  config_lib.MetaLearnerConfig] = None,
                              conv_dtypes=config_lib.EXPORT_CONV_DTYPES
                              ) -> Dict[str, float]:
  """Latency of adapt-and-classify through a loaded SavedModel.

  For 5-way and 20-way 1-shot with 15 queries per class, builds a fresh
  meta-learner with `meta_learner`'s settings (the latency does not depend
  on its weights), exports it, loads it with `tf.saved_model.load` and times
  `serving_default` calls (inputs already tensors; the time includes the
  in-graph validation and preprocessing of raw 105 x 105 images).

  Args:
    omniglot_dir: local Omniglot for real images, or None for random ones.
    num_calls: timed calls per setting (>= 50 for a meaningful p95).
    warmup: untimed calls first.
    num_episodes: distinct episodes cycled through.
    inner_steps: T of the exported model (latency grows linearly with it).
    meta_learner: the meta-learner's settings (default: the library's).
    conv_dtypes: the exports' conv precisions to time (the first, float32,
      is the default export; the others' keys end in `_<dtype>`).

  Returns:
    `serving_latency_ms_p50_5w1s`, `serving_latency_ms_p95_5w1s`,
    `serving_latency_ms_p50_20w1s` (and the same with `_bfloat16`),
    `serving_inner_steps`, and `serving_images` ('omniglot' or
    'synthetic').
  """
  results = {}
  for num_ways in (5, 20):
    episode_config = config_lib.EpisodeConfig(num_ways=num_ways, num_shots=1,
                                              num_queries=15)
    config = config_lib.ExperimentConfig(
        episode=episode_config,
        learner=config_lib.LearnerConfig(num_ways=num_ways),
        meta_learner=meta_learner or config_lib.MetaLearnerConfig(),
        inner_loop=config_lib.InnerLoopConfig(
            inner_steps=inner_steps)).validate()
    rule = rules.make_rule(config)
    episodes = []
    for seed in range(num_episodes):
      episode = sample_raw_episode(omniglot_dir, episode_config, seed=seed)
      episodes.append({
          'support_images': tf.constant(episode.support_images),
          'support_labels': tf.constant(episode.support_labels),
          'query_images': tf.constant(episode.query_images)})
    for conv_dtype in conv_dtypes:
      with tempfile.TemporaryDirectory() as export_base:
        path = export.export_adapt_and_classify(rule, config, export_base,
                                                conv_dtype)
        loaded = tf.saved_model.load(path)
        latencies = _time_calls(
            loaded.signatures[modules.SERVING_DEFAULT], episodes, num_calls,
            warmup)
      tag = f'{num_ways}w1s'
      if conv_dtype != 'float32':
        tag += f'_{conv_dtype}'
      results[f'serving_latency_ms_p50_{tag}'] = float(
          np.percentile(latencies, 50))
      if num_ways == 5:
        results[f'serving_latency_ms_p95_{tag}'] = float(
            np.percentile(latencies, 95))
    results['serving_inner_steps'] = config.inner_loop.inner_steps
  results['serving_images'] = 'omniglot' if omniglot_dir else 'synthetic'
  return results
