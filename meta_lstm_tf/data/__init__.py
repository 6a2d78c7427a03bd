"""Data sources, class splits and episodes.

  errors.py             `DataError`: missing, corrupt or inconsistent data
  class_pools.py        `ClassPool(s)`: the decoded classes of each meta-split
  omniglot_catalog.py   Omniglot's alphabets, character ids and archives
  omniglot_sources.py   a local copy: its archives / folders and examples
  omniglot.py           TFDS `omniglot`, online or prepared from a local copy
  omniglot_drawers.py   each drawing's drawer (Lake's distinct-drawer rule)
  splits.py             Omniglot's lake / minimal / vinyals class splits, and
                        `make_class_pools` for every data set
  mini_imagenet.py      mini-ImageNet from a local copy (CSV or folders)
  image_folder.py       any DIR/{train,val,test}/CLASS/* tree
  image_files.py        decoding and resizing the photograph sources' files
  image_ops.py          image preprocessing shared by training and serving
  episodes.py           stateless N-way K-shot episode sampling (`tf.data`)
"""
