"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving runs the requests of this file (a TFRecord of `PredictionLog`
protos) once when it loads a version, before the version serves, so the
first client request does not pay for graph optimisation and memory
allocation. Each export writes one valid request per signature
(`modules.*.warmup_inputs`).

The protos come from `tensorflow_serving.apis` (`pip install
'.[serving]'`) when it is importable; without it the same bytes are
written by hand (`_prediction_log_bytes`: protobuf's wire format of
`PredictionLog{predict_log: PredictLog{request: PredictRequest{model_spec:
ModelSpec{signature_name}, inputs}}}`, map entries in key order, as
protobuf's deterministic serialisation writes them), so exporting never
needs the package.
"""

import os
from typing import Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf

# Where TF Serving looks for them, relative to the SavedModel directory.
WARMUP_FILE = os.path.join('assets.extra', 'tf_serving_warmup_requests')

# Field numbers in tensorflow_serving/apis/*.proto.
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_REQUEST_MODEL_SPEC = 1
_REQUEST_INPUTS = 2
_MODEL_SPEC_NAME = 1
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY, _MAP_VALUE = 1, 2


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string_field(number: int, text: str) -> bytes:
  # proto3 leaves empty strings out.
  return _field(number, text.encode('utf-8')) if text else b''


def _prediction_log_bytes(signature_name: str,
                          inputs: Mapping[str, np.ndarray],
                          model_name: str = '') -> bytes:
  """A serialised PredictionLog holding one PredictRequest, by hand."""
  model_spec = (_string_field(_MODEL_SPEC_NAME, model_name) +
                _string_field(_MODEL_SPEC_SIGNATURE_NAME, signature_name))
  request = _field(_REQUEST_MODEL_SPEC, model_spec)
  for key in sorted(inputs):
    tensor = tf.make_tensor_proto(inputs[key]).SerializeToString()
    request += _field(_REQUEST_INPUTS, _field(_MAP_KEY, key.encode('utf-8')) +
                      _field(_MAP_VALUE, tensor))
  return _field(_PREDICTION_LOG_PREDICT_LOG,
                _field(_PREDICT_LOG_REQUEST, request))


def prediction_log_bytes(signature_name: str,
                         inputs: Mapping[str, np.ndarray],
                         model_name: str = '') -> bytes:
  """One serialised `PredictionLog` with a `PredictRequest` of `inputs` to
  `signature_name` (with `tensorflow_serving.apis` if importable)."""
  try:
    # pylint: disable-next=g-import-not-at-top
    from tensorflow_serving.apis import prediction_log_pb2
  except ImportError:
    return _prediction_log_bytes(signature_name, inputs, model_name)
  log = prediction_log_pb2.PredictionLog()
  request = log.predict_log.request
  request.model_spec.signature_name = signature_name
  if model_name:
    request.model_spec.name = model_name
  for key, value in inputs.items():
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
  return log.SerializeToString(deterministic=True)


def write_warmup_requests(
    saved_model_dir: str,
    requests: Mapping[str, Mapping[str, np.ndarray]]) -> str:
  """Writes {signature name: inputs}, one request each, as the SavedModel's
  warm-up file; returns its path."""
  path = os.path.join(saved_model_dir, WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for signature_name in sorted(requests):
      writer.write(prediction_log_bytes(signature_name,
                                        requests[signature_name]))
  return path


def read_warmup_requests(saved_model_dir: str
                         ) -> List[Tuple[str, Dict[str, np.ndarray]]]:
  """[(signature name, inputs)] of a SavedModel's warm-up file. Needs
  `tensorflow_serving.apis`."""
  # pylint: disable-next=g-import-not-at-top
  from tensorflow_serving.apis import prediction_log_pb2
  requests = []
  for record in tf.data.TFRecordDataset(
      os.path.join(saved_model_dir, WARMUP_FILE)):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    request = log.predict_log.request
    requests.append((request.model_spec.signature_name,
                     {key: tf.make_ndarray(value)
                      for key, value in request.inputs.items()}))
  return requests
