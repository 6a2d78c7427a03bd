"""Omniglot (Lake et al., 2015): TFDS `omniglot` or a local copy, and its
class splits.

  catalog.py   the fixed facts: alphabets, character ids, TFDS features,
               archives and their SHA-256
  sources.py   a local copy: its archives / folders and examples
  loader.py    TFDS `omniglot` online, or TFDS `omniglot_offline` prepared
               from a local copy (`load_omniglot_split`)
  drawers.py   who drew each drawing (Lake's distinct-drawer rule)
  splits.py    the lake / minimal / vinyals protocols -> `ClassPools`

Callers outside the data package go through `data.pools`.
"""
