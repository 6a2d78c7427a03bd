"""The results command end to end on the real Omniglot copy, tiny budgets.

Skipped unless OMNIGLOT_DIR points at a local copy.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from tests.fixtures import real_data

REPO = real_data.REPO
OMNIGLOT_DIR = real_data.OMNIGLOT_DIR
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow  # About 70 s on 2 CPU cores.
@pytest.mark.skipif(not OMNIGLOT_DIR, reason=real_data.SKIP_REASON)
def test_command_end_to_end_on_real_omniglot():
  root = tempfile.mkdtemp()
  readme = os.path.join(root, 'README.md')
  with open(readme, 'w') as f:
    f.write('<!-- results:begin -->\n<!-- results:end -->\n')
  command = [
      sys.executable, '-m', 'meta_lstm_tf.bin.results',
      '--flagfile=configs/results_mini.flags', f'--workdir={root}/grid',
      f'--omniglot_dir={OMNIGLOT_DIR}', '--settings=5w1s',
      '--max_steps=3', '--max_train_seconds=0', '--eval_every=2',
      '--eval_episodes=4', '--test_episodes=8', '--inner_steps=2',
      '--pretrain_steps=5', '--pretrain_seconds=0',
      '--finetune_learning_rates=0.1', '--finetune_steps=2',
      '--selection_episodes=4',
      f'--update_readme={readme}']
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(root, 'grid', 'results.md')) as f:
    markdown = f.read()
  methods = ('meta_lstm', 'sgd', 'meta_sgd', 'finetune', 'nearest_neighbour')
  for method in methods:
    row = [line for line in markdown.splitlines()
           if line.startswith('| ') and f'(`{method}`)' in line]
    # The accuracy table, then (every method but meta_lstm) the paired
    # comparison with meta_lstm on the same episodes.
    assert len(row) == (1 if method == 'meta_lstm' else 2), (method, markdown)
    assert row[0].count('±') == 1, (method, markdown)
    if method != 'meta_lstm':
      assert re.search(r'\| [+-]\d+\.\d\d ± \d+\.\d\d \|', row[1]), row[1]
  assert 'Not run yet' not in markdown
  with open(os.path.join(root, 'grid', 'results.json')) as f:
    report = json.load(f)
  assert {(r['method'], r['setting']) for r in report['rows']} == {
      (m, '5w1s') for m in methods}
  for rule in ('meta_lstm', 'sgd', 'meta_sgd'):
    with open(os.path.join(root, 'grid', f'{rule}_5w1s', 'results.json')) as f:
      assert json.load(f)['update_rule'] == rule
  assert all(r['test_episodes'] == 8 for r in report['rows'])
  assert len(report['curves']['meta_lstm_5w1s']) == 2  # Steps 2 and 3.
  with open(os.path.join(root, 'grid', 'valid_curves.png'), 'rb') as f:
    assert f.read().startswith(PNG_MAGIC)
  with open(readme) as f:
    assert '(`meta_lstm`)' in f.read()
