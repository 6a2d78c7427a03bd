r"""gRPC client for the exported meta-learner served by TF Serving.

Imports neither meta_lstm_tf nor anything beyond TensorFlow (for
`tf.make_tensor_proto`) and the optional `tensorflow-serving-api`
(`pip install 'meta_lstm_tf[serving]'` or `pip install
tensorflow-serving-api`).

    # Adapt-and-classify (model `meta_lstm`, gRPC port 8500): the support set
    # is one subfolder of images per class; queries are image files.
    python export/grpc_client.py --server=localhost:8500 \
        --support_dir=support/ query1.png query2.png

    # Adapted learner:
    python export/grpc_client.py --server=localhost:8500 \
        --model_name=meta_lstm_adapted a.png b.png

From Python, `build_predict_request` takes float32 images [S, H, W, C] in
[0, 1] (white background; signature `serving_default`) or a list of encoded
PNG/JPEG bytes (signature `encoded_images`).
"""

import argparse
import os
import sys
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

# pylint: disable=g-import-not-at-top
try:
  from tensorflow_serving.apis import predict_pb2
  from tensorflow_serving.apis import prediction_service_pb2_grpc
except ImportError:  # The optional [serving] extra is not installed.
  predict_pb2 = None
  prediction_service_pb2_grpc = None
# pylint: enable=g-import-not-at-top

SERVING_DEFAULT = 'serving_default'
ENCODED_SIGNATURE = 'encoded_images'


def _require_serving_api() -> None:
  if predict_pb2 is None:
    raise ImportError('grpc_client needs tensorflow-serving-api: pip install '
                      "'meta_lstm_tf[serving]' (or tensorflow-serving-api)")


def _images_proto(images) -> 'tf.compat.v1.TensorProto':
  """Float images -> DT_FLOAT; a sequence of bytes -> DT_STRING."""
  if (isinstance(images, (list, tuple)) and images and
      isinstance(images[0], bytes)) or (
          isinstance(images, np.ndarray) and images.dtype.kind in 'SO'):
    return tf.make_tensor_proto(list(images), dtype=tf.string)
  return tf.make_tensor_proto(np.asarray(images, np.float32),
                              dtype=tf.float32)


def _default_signature(images_proto) -> str:
  if images_proto.dtype == tf.string.as_datatype_enum:
    return ENCODED_SIGNATURE
  return SERVING_DEFAULT


def _model_spec(request, model_name: str, signature_name: str,
                version: Optional[int]) -> None:
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = version


def build_predict_request(support_images, support_labels, query_images,
                          model_name: str = 'meta_lstm',
                          signature_name: Optional[str] = None,
                          version: Optional[int] = None):
  """An adapt-and-classify `PredictRequest`.

  Args:
    support_images: float32 [S, H, W, C] in [0, 1], or S encoded images.
    support_labels: int [S] in [0, N).
    query_images: like `support_images`, Q of them.
    model_name: the model's name in the server's models.config.
    signature_name: default `serving_default` for float images,
      `encoded_images` for bytes.
    version: a model version; default the newest.

  Returns:
    `predict_pb2.PredictRequest`.
  """
  _require_serving_api()
  request = predict_pb2.PredictRequest()
  support = _images_proto(support_images)
  if signature_name is None:
    signature_name = _default_signature(support)
  _model_spec(request, model_name, signature_name, version)
  request.inputs['support_images'].CopyFrom(support)
  request.inputs['support_labels'].CopyFrom(
      tf.make_tensor_proto(np.asarray(support_labels, np.int32),
                           dtype=tf.int32))
  request.inputs['query_images'].CopyFrom(_images_proto(query_images))
  return request


def build_classify_request(images, model_name: str = 'meta_lstm_adapted',
                           signature_name: Optional[str] = None,
                           version: Optional[int] = None):
  """An adapted-learner `PredictRequest` (input `images`)."""
  _require_serving_api()
  request = predict_pb2.PredictRequest()
  proto = _images_proto(images)
  if signature_name is None:
    signature_name = _default_signature(proto)
  _model_spec(request, model_name, signature_name, version)
  request.inputs['images'].CopyFrom(proto)
  return request


def request_tensors(request) -> Dict[str, np.ndarray]:
  """The request's inputs as NumPy arrays (what the server will feed)."""
  return {name: tf.make_ndarray(proto)
          for name, proto in request.inputs.items()}


def predict(server: str, request, timeout: float = 30.0
            ) -> Dict[str, np.ndarray]:
  """Sends a `PredictRequest` to `server` ('host:port'); returns outputs."""
  _require_serving_api()
  import grpc  # pylint: disable=g-import-not-at-top
  with grpc.insecure_channel(server) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout)
  return {name: tf.make_ndarray(proto)
          for name, proto in response.outputs.items()}


def _read(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--server', default='localhost:8500')
  parser.add_argument('--model_name', default=None,
                      help='Default meta_lstm, or meta_lstm_adapted without '
                      '--support_dir.')
  parser.add_argument('--support_dir', help='One subfolder of images per '
                      'class (adapt-and-classify).')
  parser.add_argument('--timeout', type=float, default=30.0)
  parser.add_argument('images', nargs='+', help='Query images.')
  args = parser.parse_args(argv)
  queries = [_read(path) for path in args.images]
  if args.support_dir:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_rest_request  # pylint: disable=g-import-not-at-top
    support, labels, class_names = make_rest_request.read_support_folder(
        args.support_dir)
    request = build_predict_request(support, labels, queries,
                                    model_name=args.model_name or 'meta_lstm')
  else:
    class_names = None
    request = build_classify_request(
        queries, model_name=args.model_name or 'meta_lstm_adapted')
  outputs = predict(args.server, request, args.timeout)
  for i, (path, index) in enumerate(zip(args.images, outputs['classes'])):
    if class_names is not None:
      name = class_names[index]
    else:  # The adapted learner returns the names given at export.
      name = outputs['class_names'][i].decode()
    print(f'{path}\t{index}\t{name}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
