"""Data sources, class splits and episodes.

Source-neutral modules, and the front door every caller goes through:

  errors.py             `DataError`: missing, corrupt or inconsistent data
  class_pools.py        `ClassPool(s)`: the decoded classes of each meta-split
  pools.py              the front door: `make_class_pools(data_config)` for
                        every `DataConfig.dataset`, `make_episode_pools`,
                        `load_pools(experiment_config)` (checked against the
                        episodes)
  datasets.py           the Python API: `class_pools`, `training_episodes`,
                        `evaluation_episodes`
  image_ops.py          image preprocessing shared by training and serving
  episodes.py           stateless N-way K-shot episode sampling (`tf.data`)

One sub-package per source:

  omniglot/             Omniglot: TFDS or a local copy
    catalog.py          alphabets, character ids and archives
    sources.py          a local copy: its archives / folders and examples
    loader.py           TFDS `omniglot`, online or prepared from a local copy
    drawers.py          each drawing's drawer (Lake's distinct-drawer rule)
    splits.py           the lake / minimal / vinyals class splits
  photos/               photographs from local copies
    mini_imagenet.py    mini-ImageNet (CSV or folders)
    image_folder.py     any DIR/{train,val,test}/CLASS/* tree
    image_files.py      decoding and resizing the photographs' files
"""
