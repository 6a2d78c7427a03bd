"""The public API: every name resolves, `import meta_lstm_tf` stays cheap,
and the README's Python quick start runs as written."""

import os
import re
import subprocess
import sys

import pytest

import meta_lstm_tf
from tests.fixtures import real_data


def test_every_public_name_resolves():
  for name in meta_lstm_tf.__all__:
    assert getattr(meta_lstm_tf, name) is not None, name
  assert meta_lstm_tf.MetaLSTMRule is meta_lstm_tf.RULES['meta_lstm']
  with pytest.raises(AttributeError, match='no attribute'):
    meta_lstm_tf.not_a_name  # pylint: disable=pointless-statement
  assert set(dir(meta_lstm_tf)) == set(meta_lstm_tf.__all__)


def test_import_does_not_import_tensorflow():
  # The binaries quiet TensorFlow's logging before it is imported.
  code = ('import sys, meta_lstm_tf; '
          'print("tensorflow" in sys.modules)')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True, cwd=real_data.REPO)
  assert out.stdout.strip() == 'False'


def _quickstart():
  with open(os.path.join(real_data.REPO, 'README.md'), encoding='utf-8') as f:
    readme = f.read()
  match = re.search(r'<!-- python-quickstart:begin -->\s*```python\n(.*?)```'
                    r'\s*<!-- python-quickstart:end -->', readme, re.S)
  assert match, 'README has no Python quick start block'
  return match.group(1)


def test_quickstart_is_short():
  assert len(_quickstart().strip().splitlines()) <= 30


@pytest.mark.skipif(not real_data.OMNIGLOT_DIR, reason=real_data.SKIP_REASON)
def test_readme_python_quickstart_runs_as_written(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv('OMNIGLOT_DIR', real_data.OMNIGLOT_DIR)
  namespace = {}
  exec(compile(_quickstart(), 'README.md', 'exec'), namespace)  # pylint: disable=exec-used
  assert namespace['logits'].shape == (75, 5)
  scores = namespace['model'].evaluate(namespace['valid'], return_dict=True,
                                       verbose=0)
  assert scores['accuracy'] > 0.4, scores  # Chance: 0.2.
  assert os.path.isdir('/tmp/meta_lstm_model')
