r"""Writes a TF Serving REST `:predict` request from image files.

Needs only the Python standard library (no TensorFlow, no meta_lstm_tf):
images travel as base64 file bytes to the `encoded_images` signature, which
decodes and preprocesses them inside the model.

    # Adapt-and-classify (model `meta_lstm`): a support set, one subfolder of
    # images per class (labels follow the sorted folder names), and queries.
    python export/make_rest_request.py --support_dir=support/ \
        --output=request.json query1.png query2.png
    curl -s -X POST -d @request.json \
        http://localhost:8501/v1/models/meta_lstm:predict

    # Adapted learner (model `meta_lstm_adapted`): only the images.
    python export/make_rest_request.py --output=request.json a.png b.png
    curl -s -X POST -d @request.json \
        http://localhost:8501/v1/models/meta_lstm_adapted:predict

The adapt-and-classify request uses the columnar `inputs` format (support and
query sets have different lengths); the response is
`{"outputs": {"logits": [[...]], "probabilities": [[...]], "classes": [...]}}`
with classes indexing the sorted support folder names (printed to stderr).
"""

import argparse
import base64
import json
import os
import sys
from typing import List, Sequence, Tuple

ENCODED_SIGNATURE = 'encoded_images'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def read_support_folder(support_dir: str
                        ) -> Tuple[List[bytes], List[int], List[str]]:
  """Reads `support_dir/CLASS/*.png|jpg|jpeg` as file bytes.

  Returns:
    (encoded images, labels, class names); label j is the j-th class name in
    sorted order, as `meta_lstm_tf.serving.support.load_support_folder` numbers
    them.
  """
  class_names = sorted(
      name for name in os.listdir(support_dir)
      if os.path.isdir(os.path.join(support_dir, name)) and
      not name.startswith('.'))
  if not class_names:
    raise ValueError(f'{support_dir!r} has no class subfolder')
  images, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(support_dir, name)
    files = sorted(f for f in os.listdir(class_dir)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise ValueError(f'class folder {class_dir!r} has no image')
    for filename in files:
      with open(os.path.join(class_dir, filename), 'rb') as f:
        images.append(f.read())
      labels.append(label)
  return images, labels, class_names


def _b64(data: bytes) -> dict:
  return {'b64': base64.b64encode(data).decode('ascii')}


def make_request(support_images: Sequence[bytes],
                 support_labels: Sequence[int],
                 query_images: Sequence[bytes],
                 signature_name: str = ENCODED_SIGNATURE) -> dict:
  """The JSON body of an adapt-and-classify `:predict` request."""
  return {
      'signature_name': signature_name,
      'inputs': {
          'support_images': [_b64(image) for image in support_images],
          'support_labels': [int(label) for label in support_labels],
          'query_images': [_b64(image) for image in query_images],
      },
  }


def make_classify_request(images: Sequence[bytes],
                          signature_name: str = ENCODED_SIGNATURE) -> dict:
  """The JSON body of an adapted-learner `:predict` request."""
  return {'signature_name': signature_name,
          'instances': [_b64(image) for image in images]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--support_dir', help='One subfolder of images per '
                      'class (adapt-and-classify); omit for the adapted '
                      'learner.')
  parser.add_argument('--output', default='-',
                      help='Where to write the JSON (default stdout).')
  parser.add_argument('images', nargs='+', help='Query images.')
  args = parser.parse_args(argv)
  queries = []
  for path in args.images:
    with open(path, 'rb') as f:
      queries.append(f.read())
  if args.support_dir:
    support, labels, class_names = read_support_folder(args.support_dir)
    request = make_request(support, labels, queries)
    print('classes: ' + ', '.join(f'{i}={name}'
                                  for i, name in enumerate(class_names)),
          file=sys.stderr)
  else:
    request = make_classify_request(queries)
  text = json.dumps(request)
  if args.output == '-':
    print(text)
  else:
    with open(args.output, 'w') as f:
      f.write(text + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
