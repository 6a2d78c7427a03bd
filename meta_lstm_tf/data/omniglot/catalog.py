"""Omniglot's fixed facts: alphabets, character ids, TFDS features, archives.

The alphabets in the order of the global character ids (XXXX in the file
names), the background / evaluation sets, the TFDS label and alphabet names,
and the archives TFDS `omniglot` downloads with their registered SHA-256.
"""

import dataclasses
from typing import Dict

SPLIT_NAMES = ('train', 'test', 'small1', 'small2')
# Where TFDS `omniglot` 3.0.0 downloads the archives from (its _BASE_URL).
TFDS_DOWNLOAD_URL = 'https://github.com/brendenlake/omniglot/'
TFDS_NAME = 'omniglot'
IMAGE_SHAPE = (105, 105, 3)
NUM_CLASSES = 1623
NUM_ALPHABETS = 50


# (alphabet, number of characters) in the order of the global character ids
# (XXXX in the file names): alphabet k's characters are the ids following
# those of alphabets 0..k-1. The first 30 are the background set.
_ALPHABET_TABLE = (
    ('Arcadian', 26), ('Armenian', 41), ('Asomtavruli_(Georgian)', 40),
    ('Balinese', 24), ('Bengali', 46),
    ('Blackfoot_(Canadian_Aboriginal_Syllabics)', 14), ('Braille', 26),
    ('Cyrillic', 33), ('Early_Aramaic', 22), ('Syriac_(Estrangelo)', 23),
    ('Anglo-Saxon_Futhorc', 29), ('Futurama', 26), ('Grantha', 43),
    ('Greek', 24), ('Gujarati', 48), ('Hebrew', 22), ('Japanese_(hiragana)', 52),
    ('Inuktitut_(Canadian_Aboriginal_Syllabics)', 16),
    ('Malay_(Jawi_-_Arabic)', 40), ('Japanese_(katakana)', 47), ('Korean', 40),
    ('Latin', 26), ('Alphabet_of_the_Magi', 20), ('Mkhedruli_(Georgian)', 41),
    ('Burmese_(Myanmar)', 34), ('N_Ko', 33),
    ('Ojibwe_(Canadian_Aboriginal_Syllabics)', 14), ('Sanskrit', 42),
    ('Tagalog', 17), ('Tifinagh', 55),
    # Evaluation set.
    ('Angelic', 20), ('Atemayar_Qelisayer', 26), ('Atlantean', 26),
    ('Aurek-Besh', 26), ('Avesta', 26), ('Ge_ez', 26), ('Glagolitic', 45),
    ('Gurmukhi', 45), ('Kannada', 41), ('Keble', 26), ('Malayalam', 47),
    ('Manipuri', 40), ('Mongolian', 30), ('Old_Church_Slavonic_(Cyrillic)', 45),
    ('Oriya', 46), ('Syriac_(Serto)', 23), ('Sylheti', 28), ('Tengwar', 25),
    ('Tibetan', 42), ('ULOG', 26),
)


def _first_labels() -> Dict[str, int]:
  first, result = 0, {}
  for alphabet, num_characters in _ALPHABET_TABLE:
    result[alphabet] = first
    first += num_characters
  return result


# alphabet -> global id of its first character.
FIRST_LABEL = _first_labels()
# alphabet -> number of characters.
NUM_CHARACTERS = dict(_ALPHABET_TABLE)
# TFDS encodes `alphabet` as the index into the sorted names.
ALPHABET_NAMES = tuple(sorted(NUM_CHARACTERS))
BACKGROUND_ALPHABETS = tuple(sorted(a for a, _ in _ALPHABET_TABLE[:30]))
EVALUATION_ALPHABETS = tuple(sorted(a for a, _ in _ALPHABET_TABLE[30:]))
# TFDS label names: f'{alphabet}_{alphabet_char_id}' in global id order.
LABEL_NAMES = tuple(f'{alphabet}_{i}' for alphabet, n in _ALPHABET_TABLE
                    for i in range(n))


@dataclasses.dataclass(frozen=True)
class ArchiveInfo:
  filename: str
  folder: str
  size: int
  sha256: str


# The archives TFDS `omniglot` downloads, with the size and SHA-256 it
# registers for them (tensorflow_datasets/url_checksums/omniglot.txt).
ARCHIVES = {
    'train': ArchiveInfo(
        'images_background.zip', 'images_background', 9464212,
        'ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640'),
    'test': ArchiveInfo(
        'images_evaluation.zip', 'images_evaluation', 6462886,
        '1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee'),
    'small1': ArchiveInfo(
        'images_background_small1.zip', 'images_background_small1', 1319022,
        'f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4'),
    'small2': ArchiveInfo(
        'images_background_small2.zip', 'images_background_small2', 1580917,
        '3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f'),
}


CITATION = """\
@article{lake2015human,
  title={Human-level concept learning through probabilistic program induction},
  author={Lake, Brenden M and Salakhutdinov, Ruslan and Tenenbaum, Joshua B},
  journal={Science},
  volume={350},
  number={6266},
  pages={1332--1338},
  year={2015},
}
"""
