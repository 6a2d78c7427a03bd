"""Where the real-data tests find Omniglot: `OMNIGLOT_DIR`, relative paths
taken from the repository root (None when unset)."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OMNIGLOT_DIR = os.environ.get('OMNIGLOT_DIR') or None
if OMNIGLOT_DIR and not os.path.isabs(OMNIGLOT_DIR):
  OMNIGLOT_DIR = os.path.join(REPO, OMNIGLOT_DIR)
