r"""Load test of the adapt-and-classify SavedModel under concurrent clients.

    python -m meta_lstm_tf.bin.load_test --num_threads=8 \
        --requests_per_thread=10            # exports a fresh 5-way model
    python -m meta_lstm_tf.bin.load_test --export_dir=WORKDIR/export/3

Loads ONE SavedModel in this process and has `--num_threads` client threads
send `--requests_per_thread` requests each into it, at once: good episodes
(the model's N ways, 1, 2 and 5 shots, float and encoded signatures, images
of varied sizes) and a share (`--bad_fraction`) of bad requests of five
kinds: `too_many_queries` (over `max_query_images`), `bomb_png` (a blank
PNG whose header says 20,000 x 20,000), `missing_class` (no support image of
class N-1), `nan` (a NaN pixel) and `corrupt_png` (a PNG with a broken
body). Prints one JSON object.

A good request is answered correctly when its probabilities equal, within
`ATOL`, those of the same request sent alone before the concurrent phase
(and its classes are the same); a bad one is rejected correctly when it
fails with `InvalidArgument` whose message names the input (and, for an
image, its position). Peak RSS is the process's high-water mark during the
concurrent phase (reset first through /proc/self/clear_refs), beside that
of one good request and of one bomb request sent alone.

The model's N is fixed at export, so every good request is N-way; a 20-way
mix needs a 20-way export (`--num_ways=20` for a fresh one).
"""

import concurrent.futures
import dataclasses
import re
import struct
import threading
import time
import zlib
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules
from meta_lstm_tf.benchmarks import memory
from meta_lstm_tf.serving import export
from meta_lstm_tf.serving import modules
from meta_lstm_tf.serving import validation

# Probabilities of a request under load and alone agree within this.
ATOL = 1e-5
SHOTS = (1, 2, 5)
BAD_KINDS = ('too_many_queries', 'bomb_png', 'missing_class', 'nan',
             'corrupt_png')
BOMB_SIDE = 20000


def blank_png(height: int, width: int) -> bytes:
  """A valid all-black 8-bit grayscale PNG, in O(width) time and memory.

  Decoding it takes height x width bytes (a 20,000 x 20,000 one: 400 MB,
  1.6 GB as float32) though the file is about a thousandth of that: a
  decompression bomb, for tests.
  """
  row = b'\0' * (width + 1)  # Filter type 0 (none), then the pixels.
  rows_per_block = max(1, min(height, (1 << 20) // len(row)))
  compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
  # A full flush resets the compressor, so equal blocks compress to equal
  # bytes: compress one block and repeat it instead of `height` rows.
  block = (compressor.compress(row * rows_per_block) +
           compressor.flush(zlib.Z_FULL_FLUSH))
  full_blocks, rest = divmod(height, rows_per_block)
  tail = compressor.compress(row * rest) + compressor.flush()
  # Adler-32 of n zero bytes: A stays 1 and B grows by 1 per byte.
  adler = ((height * len(row)) % 65521) << 16 | 1
  stream = (b'\x78\xda' + block * full_blocks + tail +
            struct.pack('>I', adler))

  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data)))

  header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
  return (validation.PNG_SIGNATURE + chunk(b'IHDR', header) +
          chunk(b'IDAT', stream) + chunk(b'IEND', b''))


def corrupt_png(png: bytes) -> bytes:
  """`png` with bytes of its first IDAT chunk flipped (signature and header
  intact, so only the decoder can tell)."""
  data = bytearray(png)
  start = data.find(b'IDAT') + 4
  length = struct.unpack('>I', data[start - 8:start - 4])[0]
  for offset in (length // 3, length // 2):
    data[start + offset] ^= 0xFF
  return bytes(data)


@dataclasses.dataclass
class Request:
  """One request: its signature and inputs, and what is expected of it.

  `error` is None for a good request, else a regex its message must match.
  """
  kind: str
  signature: str
  inputs: Dict[str, tf.Tensor]
  error: Optional[str] = None
  reference: Optional[np.ndarray] = None


def _png_bytes(images: np.ndarray) -> np.ndarray:
  """float [X, H, W, C] in [0, 1] -> object array of PNG bytes."""
  pixels = tf.cast(tf.round(images * 255.0), tf.uint8)
  return np.array([tf.io.encode_png(image).numpy() for image in pixels],
                  dtype=object)


def _good_request(rng: np.random.Generator, num_ways: int, shots: int,
                  queries_per_class: int, encoded: bool) -> Request:
  side = int(rng.integers(28, 106))
  support = rng.random((num_ways * shots, side, side, 1), np.float32)
  query = rng.random((num_ways * queries_per_class, side, side, 1),
                     np.float32)
  labels = rng.permutation(np.repeat(np.arange(num_ways, dtype=np.int32),
                                     shots))
  if encoded:
    support, query = _png_bytes(support), _png_bytes(query)
  signature = (modules.ENCODED_SIGNATURE if encoded
               else modules.SERVING_DEFAULT)
  kind = f'{num_ways}w{shots}s_{"encoded" if encoded else "float"}'
  return Request(kind, signature, {
      'support_images': tf.constant(support),
      'support_labels': tf.constant(labels),
      'query_images': tf.constant(query)})


def _bad_request(kind: str, rng: np.random.Generator, num_ways: int,
                 limits: validation.ServingLimits, bomb: bytes,
                 bomb_side: int) -> Request:
  good = _good_request(rng, num_ways, 1, 2, encoded=kind in (
      'bomb_png', 'corrupt_png'))
  inputs = dict(good.inputs)
  if kind == 'too_many_queries':
    inputs['query_images'] = tf.fill(
        [limits.max_query_images + 1, 1, 1, 1], 0.5)
    error = r'query_images: too many images; the limit is'
  elif kind == 'bomb_png':
    query = inputs['query_images'].numpy()
    query[1] = bomb
    inputs['query_images'] = tf.constant(query)
    error = (rf'query_images\[1\] is {bomb_side} x {bomb_side}: larger '
             'than the limit')
  elif kind == 'missing_class':
    labels = inputs['support_labels'].numpy()
    labels[labels == num_ways - 1] = 0
    inputs['support_labels'] = tf.constant(labels)
    error = (r'support_labels: every class .*missing classes\] '
             rf'\[{num_ways - 1}\]')
  elif kind == 'nan':
    query = inputs['query_images'].numpy()
    query[0, 0, 0, 0] = np.nan
    inputs['query_images'] = tf.constant(query)
    error = r'query_images: pixel values must be finite'
  elif kind == 'corrupt_png':
    query = inputs['query_images'].numpy()
    query[1] = corrupt_png(query[1])
    inputs['query_images'] = tf.constant(query)
    error = r'query_images\[1\]: not a decodable PNG/JPEG'
  else:
    raise ValueError(f'unknown bad request kind {kind!r}')
  return Request(kind, good.signature, inputs, error)


def make_requests(num_requests: int, num_ways: int,
                  limits: validation.ServingLimits, bad_fraction: float,
                  queries_per_class: int = 5, seed: int = 0
                  ) -> List[Request]:
  """A shuffled mix of good and bad requests (see the module docstring)."""
  rng = np.random.default_rng(seed)
  num_bad = int(round(num_requests * bad_fraction))
  # Over the limits whatever they are, so it is never decoded.
  bomb_side = max(BOMB_SIDE, limits.max_image_height + 1,
                  limits.max_image_width + 1)
  bomb = blank_png(bomb_side, bomb_side) if num_bad else b''
  requests = [_bad_request(BAD_KINDS[i % len(BAD_KINDS)], rng, num_ways,
                           limits, bomb, bomb_side) for i in range(num_bad)]
  for i in range(num_requests - num_bad):
    requests.append(_good_request(rng, num_ways, SHOTS[i % len(SHOTS)],
                                  queries_per_class, encoded=i % 2 == 1))
  order = rng.permutation(len(requests))
  return [requests[i] for i in order]


def _send(model, request: Request):
  """(probabilities or None, error message or None, latency in ms)."""
  start = time.perf_counter()
  try:
    outputs = model.signatures[request.signature](**request.inputs)
    probabilities = outputs['probabilities'].numpy()
    return probabilities, None, (time.perf_counter() - start) * 1e3
  except tf.errors.OpError as e:
    kind = type(e).__name__
    return None, f'{kind}: {e.message}', (time.perf_counter() - start) * 1e3


def _percentile(values, q) -> Optional[float]:
  return float(np.percentile(values, q)) if len(values) else None


def fresh_export(export_base: str, num_ways: int = 5,
                 config: Optional[config_lib.ExperimentConfig] = None,
                 limits: Optional[validation.ServingLimits] = None) -> str:
  """Exports a freshly initialised (untrained) meta-learner: the answers
  are meaningless, but cost, correctness under load and rejection do not
  depend on the weights."""
  config = config or config_lib.ExperimentConfig(
      episode=config_lib.EpisodeConfig(num_ways=num_ways),
      learner=config_lib.LearnerConfig(num_ways=num_ways)).validate()
  return export.export_adapt_and_classify(rules.make_rule(config), config,
                                          export_base, limits=limits)


def run_load_test(export_dir: str, num_threads: int = 8,
                  requests_per_thread: int = 10, bad_fraction: float = 0.2,
                  queries_per_class: int = 5, seed: int = 0) -> dict:
  """Runs the load test against the SavedModel at `export_dir`.

  Args:
    export_dir: an adapt-and-classify export with `serving_limits` in its
      metadata (one written before the limits existed would decode bombs).
    num_threads: concurrent client threads.
    requests_per_thread: requests each thread sends.
    bad_fraction: the share of bad requests.
    queries_per_class: queries per class of a good request.
    seed: NumPy seed of the requests.

  Returns:
    The JSON-able results (see the keys below and the module docstring).

  Raises:
    ValueError: the export has no `serving_limits`.
  """
  metadata = export.read_metadata(export_dir)
  if 'serving_limits' not in metadata:
    raise ValueError(f'{export_dir} has no serving_limits in its metadata: '
                     'exported before the limits existed; re-export it')
  limits = validation.ServingLimits(**metadata['serving_limits'])
  num_ways = metadata['num_ways']
  model = tf.saved_model.load(export_dir)
  total = num_threads * requests_per_thread
  requests = make_requests(total, num_ways, limits, bad_fraction,
                           queries_per_class, seed)

  single_growth, bomb_growth = _send_alone(model, requests)
  results, wall, rss_before, peak = _send_concurrently(model, requests,
                                                       num_threads)
  tally = _tally(requests, results)
  bad, good_latencies, bad_latencies = (
      tally['bad_by_kind'], tally.pop('good_latencies'),
      tally.pop('bad_latencies'))
  num_bad = sum(c['sent'] for c in bad.values())
  return {
      'export_dir': export_dir,
      'num_ways': num_ways,
      'shots': list(SHOTS),
      'queries_per_class': queries_per_class,
      'serving_limits': limits.to_dict(),
      'num_threads': num_threads,
      'requests_per_thread': requests_per_thread,
      'requests': total,
      'good_requests': total - num_bad,
      'bad_requests': num_bad,
      'wall_seconds': wall,
      'throughput_requests_per_sec': total / wall,
      'latency_ms_p50': _percentile(good_latencies, 50),
      'latency_ms_p99': _percentile(good_latencies, 99),
      'bad_latency_ms_p50': _percentile(bad_latencies, 50),
      **tally,
      'all_good_correct': (tally['wrong_answers'] == 0 and
                           tally['good_errors'] == 0),
      'all_bad_rejected_naming_input': all(
          c['rejected_naming_input'] == c['sent'] for c in bad.values()),
      'rss_mib_before': rss_before,
      'peak_rss_mib': peak,
      'peak_rss_growth_mib': peak - rss_before,
      'single_request_peak_rss_growth_mib': single_growth,
      'bomb_request_peak_rss_growth_mib': bomb_growth,
  }


def _send_alone(model, requests: List[Request]):
  """Sends each good request alone, one after another (its reference
  answer; this also warms up both signatures); returns the peak-RSS growth
  of the largest good request and of a bomb, each alone."""
  for request in requests:
    if request.error is None:
      request.reference, error, _ = _send(model, request)
      if error is not None:
        raise RuntimeError(f'good request {request.kind} failed alone: '
                           f'{error}')
  largest = max(
      (r for r in requests
       if r.error is None and r.signature == modules.SERVING_DEFAULT),
      key=lambda r: int(tf.size(r.inputs['support_images']) +
                        tf.size(r.inputs['query_images'])))
  single_growth = memory.peak_rss_growth_mib(lambda: _send(model, largest))
  bombs = [r for r in requests if r.kind == 'bomb_png']
  bomb_growth = (memory.peak_rss_growth_mib(lambda: _send(model, bombs[0]))
                 if bombs else None)
  return single_growth, bomb_growth


def _send_concurrently(model, requests: List[Request], num_threads: int):
  """Every request, from `num_threads` clients started at once.

  Returns:
    (per request (probabilities, error, latency), wall seconds, RSS before
    and peak RSS during, MiB).
  """
  total = len(requests)
  results = [None] * total
  barrier = threading.Barrier(num_threads)

  def client(thread_index: int):
    barrier.wait()
    for i in range(thread_index, total, num_threads):
      results[i] = _send(model, requests[i])

  memory.reset_peak_rss()
  rss_before = memory.rss_mib()
  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    list(pool.map(client, range(num_threads)))
  wall = time.perf_counter() - start
  return results, wall, rss_before, memory.peak_rss_mib()


def _tally(requests: List[Request], results) -> dict:
  """Good answers against their references, bad ones by kind."""
  good_latencies, bad_latencies, max_diff = [], [], 0.0
  wrong, good_errors = 0, 0
  bad = {kind: {'sent': 0, 'rejected_naming_input': 0, 'accepted': 0,
                'other_message': 0} for kind in BAD_KINDS}
  examples = {}
  for request, (probabilities, error, latency) in zip(requests, results):
    if request.error is None:
      good_latencies.append(latency)
      if error is not None:
        good_errors += 1
        continue
      diff = float(np.max(np.abs(probabilities - request.reference)))
      max_diff = max(max_diff, diff)
      if diff > ATOL or not np.array_equal(
          probabilities.argmax(-1), request.reference.argmax(-1)):
        wrong += 1
    else:
      bad_latencies.append(latency)
      counts = bad[request.kind]
      counts['sent'] += 1
      if error is None:
        counts['accepted'] += 1
      elif (error.startswith('InvalidArgumentError') and
            re.search(request.error, error)):
        counts['rejected_naming_input'] += 1
        examples.setdefault(request.kind, _assertion_line(error))
      else:
        counts['other_message'] += 1
        examples.setdefault(request.kind, _assertion_line(error))
  return {'wrong_answers': wrong, 'good_errors': good_errors,
          'max_abs_probability_diff': max_diff, 'bad_by_kind': bad,
          'bad_messages': examples, 'good_latencies': good_latencies,
          'bad_latencies': bad_latencies}


def _assertion_line(message: str) -> str:
  """The line of a TF error message that holds the assertion's text."""
  for line in message.splitlines():
    if 'assertion failed' in line:
      return line.strip()
  return message.splitlines()[0] if message else ''
