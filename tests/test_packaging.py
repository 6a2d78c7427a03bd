"""Packaging: the wheel pyproject.toml builds holds every module, the configs
and the declared requirements, and its console script reads the installed
configs from any directory.

Builds from a copy of the sources (setuptools writes build/ beside them),
without network access (no build isolation), so it needs setuptools >= 61
in this environment (the `test` extra installs it).
"""

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ('meta-lstm-train', 'meta-lstm-benchmark', 'meta-lstm-export',
           'meta-lstm-results', 'meta-lstm-evaluate')

# Run with only the installed copy on the path: where the package and its
# configs came from, and what --flagfile=configs/mini.flags sets.
_PARSE_SCRIPT = r'''
import json, sys
from absl import flags
import meta_lstm_tf
from meta_lstm_tf.bin import cli
values = flags.FlagValues()
cli.define_flags(values)
values(cli.expand_flagfiles(['prog', '--flagfile=configs/mini.flags']))
print(json.dumps({'package': meta_lstm_tf.__file__,
                  'configs': cli.configs_dir(),
                  'max_train_seconds': values.max_train_seconds,
                  'gate_bias_scale': values.gate_bias_scale}))
'''


def _setuptools_version():
  if importlib.util.find_spec('setuptools') is None:
    return None
  import setuptools  # pylint: disable=g-import-not-at-top
  return tuple(int(p) for p in setuptools.__version__.split('.')[:2])


class WheelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    version = _setuptools_version()
    if version is None or version < (61, 0):
      raise AssertionError(
          f'setuptools >= 61 is needed to build the package (found '
          f'{version}); pip install ".[test]" installs it')
    cls.tmp = tempfile.mkdtemp(prefix='test_packaging_')
    source = os.path.join(cls.tmp, 'src')
    os.makedirs(source)
    for name in ('pyproject.toml', 'README.md'):
      shutil.copy(os.path.join(REPO, name), source)
    for name in ('configs', 'meta_lstm_tf'):
      shutil.copytree(os.path.join(REPO, name), os.path.join(source, name),
                      ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    dist = os.path.join(cls.tmp, 'dist')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
         '--no-build-isolation', '--quiet', '-w', dist, source],
        check=True, capture_output=True, timeout=300)
    cls.wheel, = glob.glob(os.path.join(dist, '*.whl'))
    with zipfile.ZipFile(cls.wheel) as archive:
      cls.names = set(archive.namelist())
      info = [n for n in cls.names if n.endswith('.dist-info/METADATA')][0]
      cls.metadata = archive.read(info).decode()
      entry_points = [n for n in cls.names
                      if n.endswith('.dist-info/entry_points.txt')][0]
      cls.entry_points = archive.read(entry_points).decode()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def test_every_module_and_config_is_in_the_wheel(self):
    for path in glob.glob(os.path.join(REPO, 'meta_lstm_tf', '**', '*.py'),
                          recursive=True):
      self.assertIn(os.path.relpath(path, REPO), self.names)
    configs = glob.glob(os.path.join(REPO, 'configs', '*.flags'))
    self.assertNotEmpty(configs)
    for path in configs:
      self.assertIn(f'meta_lstm_tf/configs/{os.path.basename(path)}',
                    self.names)

  def test_requirements_extras_and_scripts(self):
    requirements = [line.split(':', 1)[1].strip()
                    for line in self.metadata.splitlines()
                    if line.startswith('Requires-Dist:')]
    for name in ('tensorflow>=2.16', 'keras>=3', 'tensorflow-datasets>=4.9',
                 'absl-py>=1.0', 'numpy>=1.23', 'tensorboard>=2.16',
                 'Pillow>=9'):
      self.assertIn(name, requirements)
    for extra in ('test', 'gpu', 'serving', 'results'):
      self.assertIn(f'Provides-Extra: {extra}', self.metadata)
    self.assertIn('Version: 0.1.0', self.metadata)
    for script in SCRIPTS:
      self.assertIn(f'{script} = meta_lstm_tf.', self.entry_points)

  def test_installed_script_reads_installed_configs_from_any_directory(self):
    site = os.path.join(self.tmp, 'site')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index',
         '--quiet', '--target', site, self.wheel],
        check=True, capture_output=True, timeout=300)
    elsewhere = tempfile.mkdtemp(dir=self.tmp)
    env = dict(os.environ, PYTHONPATH=site, TF_CPP_MIN_LOG_LEVEL='3')
    parsed = subprocess.run(
        [sys.executable, '-c', _PARSE_SCRIPT], cwd=elsewhere, env=env,
        capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(parsed.stdout.strip().splitlines()[-1])
    self.assertStartsWith(result['package'], site)
    self.assertEqual(result['configs'],
                     os.path.join(site, 'meta_lstm_tf', 'configs'))
    # mini.flags, and base.flags through its nested --flagfile line.
    self.assertEqual((result['max_train_seconds'], result['gate_bias_scale']),
                     (450.0, 30.0))
    # The console script: flags parsed (the config is refused for
    # --num_ways=1, after reading the flagfile), nothing about the file.
    script = subprocess.run(
        [os.path.join(site, 'bin', 'meta-lstm-train'),
         '--flagfile=configs/mini.flags', '--num_ways=1'], cwd=elsewhere,
        env=env, capture_output=True, text=True, check=False, timeout=300)
    self.assertEqual(script.returncode, 1, script.stderr[-2000:])
    self.assertIn('bad flag: --num_ways=1', script.stderr)
    self.assertNotIn('Unable to open flagfile', script.stderr)
    self.assertEqual(os.listdir(elsewhere), [])


if __name__ == '__main__':
  tf.test.main()
