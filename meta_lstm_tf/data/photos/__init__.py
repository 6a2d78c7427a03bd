"""Photograph data sets from local copies, decoded to uint8 class pools.

  mini_imagenet.py   mini-ImageNet with Ravi & Larochelle's split (CSV or
                     folders)
  image_folder.py    any data_root/{train,val,test}/CLASS/* tree
  image_files.py     decoding and resizing the files, shared by both

Callers outside the data package go through `data.pools`.
"""
