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

Online, before TFDS downloads anything, the download host is probed with a
short timeout (through the proxy the environment names, as TFDS's
downloader would go): without a network the load fails at once, naming
`--omniglot_dir` / `$OMNIGLOT_DIR`, instead of after minutes of TFDS's
download retries. A data set TFDS prepared before loads without a probe.

Preparation happens once per distinct source content (the builder config name
is a fingerprint of the sources) under a file lock, so concurrent processes do
not corrupt the prepared copy; later loads only read the TFRecords.

Shape glossary: H = W = 105 source pixels; C = 3 channels as TFDS declares
them (the PNGs themselves are 1-bit grayscale, white background, black
strokes).
"""

import os
import socket
import threading
from typing import Optional
import urllib.parse
import urllib.request

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from meta_lstm_tf import file_lock
from meta_lstm_tf.data import errors
from meta_lstm_tf.data.omniglot import catalog
from meta_lstm_tf.data.omniglot import sources as sources_lib


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
                shape=catalog.IMAGE_SHAPE, encoding_format='png'),
            'alphabet': tfds.features.ClassLabel(names=catalog.ALPHABET_NAMES),
            'alphabet_char_id': np.int64,
            'label': tfds.features.ClassLabel(names=catalog.LABEL_NAMES),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://github.com/brendenlake/omniglot/',
        citation=catalog.CITATION,
    )

  def _split_generators(self, dl_manager):
    sources = sources_lib.find_sources(os.fspath(dl_manager.manual_dir))
    return {split: self._generate_examples(source)
            for split, source in sources.items()}

  def _generate_examples(self, source: sources_lib.Source):
    yield from sources_lib.iterate_source(source)


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
  sources = sources_lib.find_sources(omniglot_dir)
  config = tfds.core.BuilderConfig(
      name=f'local_{sources_lib.fingerprint(sources)}',
      description='sources: ' + ', '.join(
          f'{s.split}={s.kind}' for s in sources.values()))

  def make_builder():
    return OmniglotOffline(config=config, data_dir=data_dir)

  builder = make_builder()
  if not builder.is_prepared():
    with file_lock.wait_for_lock(os.fspath(builder.data_path) + '.lock'):
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


_LOCAL_COPY_HINT = (
    f'point --omniglot_dir (or ${sources_lib.OMNIGLOT_DIR_ENV}) at a local '
    'copy: a folder holding images_background.zip and '
    'images_evaluation.zip, or their extracted folders '
    'images_background/ALPHABET/characterNN/*.png and '
    'images_evaluation/... (from github.com/brendenlake/omniglot, python/).')


def _first_line(error: BaseException) -> str:
  return (str(error).strip().splitlines() or [''])[0][:200]


def download_failed_message(error: BaseException) -> str:
  """What to do when TFDS could not download Omniglot."""
  return ('TFDS could not download Omniglot '
          f'({type(error).__name__}: {_first_line(error)}). Without network '
          f'access, {_LOCAL_COPY_HINT}')


# How long the download host may take to accept a connection.
PROBE_TIMEOUT_SECONDS = 3.0


def probe_download(url: str = catalog.TFDS_DOWNLOAD_URL,
                   timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
  """Raises OSError unless a TCP connection to `url`'s host opens in time.

  Connects where an HTTP client would: to the proxy the environment names
  for the URL's scheme (`HTTPS_PROXY`, `ALL_PROXY`, ...; `NO_PROXY`
  respected), else to the host. Name resolution counts towards `timeout`
  (it runs in a daemon thread, since `getaddrinfo` has no timeout).
  """
  parsed = urllib.parse.urlsplit(url)
  host = parsed.hostname
  port = parsed.port or (443 if parsed.scheme == 'https' else 80)
  proxies = urllib.request.getproxies()
  proxy = proxies.get(parsed.scheme) or proxies.get('all')
  if proxy and not urllib.request.proxy_bypass(host):
    proxied = urllib.parse.urlsplit(proxy if '://' in proxy
                                    else f'http://{proxy}')
    host, port = proxied.hostname, proxied.port or 80
  outcome = []

  def connect():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      outcome.append(None)
    except OSError as e:
      outcome.append(e)

  thread = threading.Thread(target=connect, daemon=True)
  thread.start()
  thread.join(timeout)
  if not outcome:
    raise TimeoutError(f'no connection to {host}:{port} within {timeout:g} s')
  if outcome[0] is not None:
    raise outcome[0]


def _check_download_possible(data_dir: Optional[str]) -> None:
  """Raises DataError at once when TFDS would have to download Omniglot
  and its download host is unreachable."""
  builder = tfds.builder(catalog.TFDS_NAME, data_dir=data_dir)
  if builder.is_prepared():
    return
  try:
    probe_download()
  except OSError as e:
    host = urllib.parse.urlsplit(catalog.TFDS_DOWNLOAD_URL).hostname
    raise errors.DataError(
        f'Omniglot is not prepared in the TFDS data directory '
        f'{os.fspath(builder.data_dir)} and TFDS cannot download it: '
        f'{host} is unreachable ({type(e).__name__}: {_first_line(e)}). '
        f'Without network access, {_LOCAL_COPY_HINT}') from e


def load_omniglot_split(split_name: str,
                        omniglot_dir: Optional[str] = None,
                        data_dir: Optional[str] = None,
                        *,
                        decoders: Optional[dict] = None) -> tf.data.Dataset:
  """Loads one TFDS Omniglot split as a dataset of feature dicts.

  Args:
    split_name: one of `catalog.SPLIT_NAMES`.
    omniglot_dir: local copy of Omniglot; None loads TFDS `omniglot` (which
      downloads it when not yet prepared in `data_dir`). This function does
      not read `OMNIGLOT_DIR`; pass
      `sources.resolve_omniglot_dir(flag)` for that.
    data_dir: TFDS data directory (None: TFDS default).
    decoders: optional TFDS decoders, e.g.
      `{'image': tfds.decode.SkipDecoding()}` for the PNG bytes.

  Returns:
    `tf.data.Dataset` of dicts with `image`, `label`, `alphabet`,
    `alphabet_char_id`, in the stored (deterministic) order.

  Raises:
    DataError: unknown split, or any problem with the local copy, including a
      split whose source is not in it; without one, a failed download, or
      (at once) Omniglot not prepared in `data_dir` while its download host
      is unreachable.
  """
  if split_name not in catalog.SPLIT_NAMES:
    raise errors.DataError(f'split_name={split_name!r}: unknown Omniglot '
                           f'split, expected one of {catalog.SPLIT_NAMES}')
  if omniglot_dir is None:
    _check_download_possible(data_dir)
    try:
      return tfds.load(catalog.TFDS_NAME, split=split_name, data_dir=data_dir,
                       decoders=decoders, shuffle_files=False)
    except _DOWNLOAD_ERRORS as e:
      raise errors.DataError(download_failed_message(e)) from e
  builder = prepare_offline_builder(omniglot_dir, data_dir)
  if split_name not in builder.info.splits:
    info = catalog.ARCHIVES[split_name]
    raise errors.DataError(
        f'split {split_name!r} is not available from omniglot_dir='
        f'{omniglot_dir!r}: it needs {info.filename} or {info.folder}/ there')
  return builder.as_dataset(split=split_name, decoders=decoders,
                            shuffle_files=False)
