"""Tests for serving/ (validation, modules, export, support folders),
export_main, the serving benchmark and the clients in export/. The serving
limits and hostile inputs are tested in test_limits.py.

A tiny learner (4 filters, 2 blocks, 12 x 12 inputs, T = 2) keeps them fast;
both SavedModels are exported once per test class. References are computed
in-process with `inner_loop.adapt_and_classify` (what evaluation runs) on
images preprocessed as the training pipeline does (uint8 PNG pixels through
`image_ops.preprocess_images`), so a match also shows that the served graph
feeds the learner what training fed it.
The real-data test (`saved_model_cli run` on an Omniglot episode) needs
OMNIGLOT_DIR.
"""

import base64
import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock
import zipfile

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import inner_loop
from meta_lstm_tf.learners import conv_ops as learner_lib
from meta_lstm_tf import rules
from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.benchmarks import serving as serving_benchmark
from meta_lstm_tf.data import image_ops
from meta_lstm_tf.serving import export as serving_export
from meta_lstm_tf.serving import modules as serving_modules
from meta_lstm_tf.serving import support as serving_support
from meta_lstm_tf.serving import validation as serving_validation
from meta_lstm_tf.serving import warmup as serving_warmup
from tests.fixtures import real_data
from tests.fixtures import serving as fixtures

_REPO = real_data.REPO
_SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable),
                                'saved_model_cli')
# Support folders number classes in sorted order; these sort as the labels
# (relabelling changes the adaptation: theta_0 differs per output unit).
_FOLDER_NAMES = tuple(f'{i}_{name}'
                      for i, name in enumerate(fixtures.CLASS_NAMES))

# Runs in a fresh interpreter that never imports meta_lstm_tf: loads both
# SavedModels and runs every signature on the inputs of an .npz file.
_RELOAD_SCRIPT = r'''
import sys
import numpy as np
import tensorflow as tf
model_dir, learner_dir, inputs_path, outputs_path = sys.argv[1:5]
x = dict(np.load(inputs_path, allow_pickle=True))
out = {}
model = tf.saved_model.load(model_dir)
for signature, suffix in (('serving_default', ''), ('encoded_images', '_png')):
  result = model.signatures[signature](
      support_images=tf.constant(x['support' + suffix]),
      support_labels=tf.constant(x['labels']),
      query_images=tf.constant(x['query' + suffix]))
  for key, value in result.items():
    out[signature + '/' + key] = value.numpy()
learner = tf.saved_model.load(learner_dir)
for signature, suffix in (('serving_default', ''), ('encoded_images', '_png')):
  images = tf.constant(x['query' + suffix])
  result = learner.signatures[signature](images=images)
  for key, value in result.items():
    out['learner/' + signature + '/' + key] = value.numpy()
assert not any(m.startswith('meta_lstm_tf') for m in sys.modules)
np.savez(outputs_path, **out)
'''


def _reference_logits(rule, config, support_u8, labels, query_u8) -> np.ndarray:
  """What evaluation computes, on images preprocessed as the pipeline does."""
  size = config.learner.image_size
  logits, _ = inner_loop.adapt_and_classify(
      rule, image_ops.preprocess_images(support_u8,
                                        size), tf.constant(labels, tf.int32),
      image_ops.preprocess_images(query_u8, size), config.inner_loop,
      training=False)
  return logits.numpy()


def _load_script(name: str):
  """Imports export/<name>.py (a script folder, not a package)."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(_REPO, 'export', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = np.exp(logits - logits.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


class ExportTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix='test_export_lib_')
    cls.config = fixtures.tiny_config()
    cls.rule = rules.make_rule(cls.config)
    # Move theta_0 away from its initial value: the exports must hold the
    # layer's current weights, not a fresh initialisation.
    rng = np.random.default_rng(0)
    cls.rule.initial_params.assign(
        cls.rule.initial_params.numpy() +
        0.05 * rng.standard_normal(cls.rule.num_coordinates).astype(np.float32))
    # Two shots per class, shuffled; support and query differ in size.
    cls.labels = rng.permutation(
        np.repeat(np.arange(fixtures.NUM_WAYS), 2)).astype(
        np.int32)
    cls.support_u8 = fixtures.natural_images(rng, len(cls.labels), size=20)
    cls.query_u8 = fixtures.natural_images(rng, 7, size=24)
    cls.support = cls.support_u8.astype(np.float32) / 255.0
    cls.query = cls.query_u8.astype(np.float32) / 255.0
    cls.reference = _reference_logits(cls.rule, cls.config, cls.support_u8,
                                      cls.labels, cls.query_u8)
    cls.model_path = serving_export.export_adapt_and_classify(
        cls.rule, cls.config, os.path.join(cls.tmp, 'meta_lstm'))
    cls.learner_path = serving_export.export_adapted_learner(
        cls.rule, cls.config, cls.support, cls.labels, fixtures.CLASS_NAMES,
        os.path.join(cls.tmp, 'meta_lstm_adapted'))
    cls.model = tf.saved_model.load(cls.model_path)
    cls.learner = tf.saved_model.load(cls.learner_path)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def _classify(self, signature='serving_default', **overrides):
    inputs = dict(support_images=self.support, support_labels=self.labels,
                  query_images=self.query)
    if signature == serving_modules.ENCODED_SIGNATURE:
      inputs.update(support_images=fixtures.pngs(self.support_u8),
                    query_images=fixtures.pngs(self.query_u8))
    inputs.update(overrides)
    outputs = self.model.signatures[signature](
        **{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}

  # ---------------------------------------------------------------- outputs

  def test_signatures_and_metadata(self):
    self.assertEqual(os.path.basename(self.model_path), '1')
    self.assertContainsSubset({'serving_default', 'encoded_images'},
                              set(self.model.signatures.keys()))
    self.assertEqual(
        set(self.model.signatures['serving_default'].structured_outputs),
        {'logits', 'probabilities', 'classes'})
    self.assertEqual(
        set(self.learner.signatures['serving_default'].structured_outputs),
        {'probabilities', 'classes', 'class_names'})
    metadata = serving_export.read_metadata(self.model_path)
    self.assertEqual(metadata['num_ways'], fixtures.NUM_WAYS)
    self.assertEqual(metadata['inner_steps'], 2)
    # The defaults, as the graph enforces them (test_limits.py).
    self.assertEqual(metadata['serving_limits'], dict(
        max_support_images=500, max_query_images=1000,
        max_image_height=1024, max_image_width=1024))
    self.assertEqual(
        serving_export.read_metadata(self.learner_path)['class_names'],
        list(fixtures.CLASS_NAMES))

  # ---------------------------------------------- TF Serving conventions

  def _signature_defs(self, path):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
      proto.ParseFromString(f.read())
    return proto.meta_graphs[0].signature_def

  def test_signature_inputs_declare_their_rank(self):
    # What TF Serving's /metadata shows clients: [-1, -1, -1, -1] float
    # images, [-1] encoded images and labels.
    expected = {
        'support_images': {'serving_default': 4, 'encoded_images': 1},
        'query_images': {'serving_default': 4, 'encoded_images': 1},
        'images': {'serving_default': 4, 'encoded_images': 1},
        'support_labels': {'serving_default': 1, 'encoded_images': 1},
    }
    for path, loaded in ((self.model_path, self.model),
                         (self.learner_path, self.learner)):
      for name, signature in self._signature_defs(path).items():
        if name.startswith('__'):
          continue
        self.assertNotEmpty(signature.inputs)
        for key, info in signature.inputs.items():
          self.assertFalse(info.tensor_shape.unknown_rank, msg=(name, key))
          self.assertEqual([d.size for d in info.tensor_shape.dim],
                           [-1] * expected[key][name], msg=(name, key))
          spec = loaded.signatures[name].structured_input_signature[1][key]
          self.assertEqual(spec.shape.rank, expected[key][name])

  def test_warmup_requests_parse_and_run(self):
    try:
      # pylint: disable-next=g-import-not-at-top,unused-import
      from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
      self.skipTest('tensorflow-serving-api is not installed')
    for path, loaded, outputs in (
        (self.model_path, self.model, 'logits'),
        (self.learner_path, self.learner, 'class_names')):
      warmup_file = os.path.join(path, 'assets.extra',
                                 'tf_serving_warmup_requests')
      self.assertTrue(os.path.isfile(warmup_file))
      records = list(tf.data.TFRecordDataset(warmup_file))
      logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
              for r in records]
      self.assertTrue(all(log.HasField('predict_log') for log in logs))
      requests = serving_warmup.read_warmup_requests(path)
      # One request per signature, each answered.
      self.assertCountEqual([name for name, _ in requests],
                            ['serving_default', 'encoded_images'])
      for name, inputs in requests:
        result = loaded.signatures[name](
            **{k: tf.constant(v) for k, v in inputs.items()})
        self.assertIn(outputs, result)
        probabilities = result['probabilities'].numpy()
        self.assertEqual(probabilities.shape[1], fixtures.NUM_WAYS)
        self.assertAllClose(probabilities.sum(-1),
                            np.ones(probabilities.shape[0]), atol=1e-5)
      # As TF Serving runs them: in a TF1 session of the C++ loader's graph.
      with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ['serve'], path)
        for name, inputs in requests:
          signature = meta_graph.signature_def[name]
          feed = {signature.inputs[k].name: v for k, v in inputs.items()}
          session.run(signature.outputs['probabilities'].name, feed)

  def test_warmup_protos_written_by_hand_match_tensorflow_serving(self):
    if importlib.util.find_spec('tensorflow_serving') is None:
      self.skipTest('tensorflow-serving-api is not installed')
    inputs = dict(support_images=self.support, support_labels=self.labels,
                  query_images=fixtures.pngs(self.query_u8))
    for model_name in ('', 'meta_lstm'):
      self.assertEqual(
          serving_warmup._prediction_log_bytes(  # pylint: disable=protected-access
              'encoded_images', inputs, model_name),
          serving_warmup.prediction_log_bytes('encoded_images', inputs,
                                              model_name))

  def test_float_signature_matches_evaluation(self):
    outputs = self._classify()
    self.assertAllClose(outputs['logits'], self.reference, atol=1e-4)
    self.assertAllClose(outputs['probabilities'], _softmax(self.reference),
                        atol=1e-5)
    self.assertAllEqual(outputs['classes'], self.reference.argmax(-1))
    self.assertEqual(outputs['classes'].dtype, np.int32)

  def test_rgb_images_match_gray(self):
    outputs = self._classify(
        support_images=np.repeat(self.support, 3, axis=-1),
        query_images=np.repeat(self.query, 3, axis=-1))
    self.assertAllClose(outputs['logits'], self.reference, atol=1e-3)

  @parameterized.parameters(1, 3)
  def test_encoded_signature_matches_float(self, channels):
    outputs = self._classify(
        signature=serving_modules.ENCODED_SIGNATURE,
        support_images=fixtures.pngs(np.repeat(self.support_u8, channels, -1)),
        query_images=fixtures.pngs(np.repeat(self.query_u8, channels, -1)))
    self.assertAllClose(outputs['logits'], self._classify()['logits'],
                        atol=1e-4)

  def test_transductive_config_is_honoured(self):
    config = fixtures.tiny_config(transductive=True)
    module = serving_modules.AdaptAndClassifyModule(self.rule, config)
    logits = module.classify(tf.constant(self.support),
                             tf.constant(self.labels),
                             tf.constant(self.query))['logits']
    expected = _reference_logits(self.rule, config, self.support_u8,
                                 self.labels, self.query_u8)
    self.assertAllClose(logits, expected, atol=1e-4)
    self.assertNotAllClose(expected, self.reference, atol=1e-3)

  def test_adapted_learner_matches_adapt_and_classify(self):
    for signature, images in (('serving_default', self.query),
                              ('encoded_images', fixtures.pngs(self.query_u8))):
      outputs = self.learner.signatures[signature](images=tf.constant(images))
      self.assertAllClose(outputs['probabilities'], _softmax(self.reference),
                          atol=1e-5)
      self.assertAllEqual(outputs['classes'], self.reference.argmax(-1))
      self.assertAllEqual(
          outputs['class_names'].numpy().astype(str),
          np.array(fixtures.CLASS_NAMES)[self.reference.argmax(-1)])
    self.assertAllEqual(self.learner.class_names.numpy().astype(str),
                        fixtures.CLASS_NAMES)

  def test_fresh_process_matches_in_process(self):
    inputs = os.path.join(self.tmp, 'reload_inputs.npz')
    outputs = os.path.join(self.tmp, 'reload_outputs.npz')
    np.savez(inputs, support=self.support, labels=self.labels,
             query=self.query, support_png=fixtures.pngs(self.support_u8),
             query_png=fixtures.pngs(self.query_u8))
    subprocess.run(
        [sys.executable, '-c', _RELOAD_SCRIPT, self.model_path,
         self.learner_path, inputs, outputs],
        check=True, env=fixtures.subprocess_env(), cwd=self.tmp,
        capture_output=True)
    got = dict(np.load(outputs, allow_pickle=True))
    for signature in ('serving_default', 'encoded_images'):
      self.assertAllClose(got[f'{signature}/logits'], self.reference,
                          atol=1e-4)
      self.assertAllEqual(got[f'{signature}/classes'],
                          self.reference.argmax(-1))
      self.assertAllClose(got[f'learner/{signature}/probabilities'],
                          _softmax(self.reference), atol=1e-5)
      self.assertAllEqual(got[f'learner/{signature}/class_names'].astype(str),
                          np.array(fixtures.CLASS_NAMES)[
                              self.reference.argmax(-1)])

  # ------------------------------------------------------------ bad inputs

  @parameterized.named_parameters(
      ('label_too_large', 'support_labels',
       dict(support_labels=np.array([0, 1, 2, 3, 5, 0, 1, 2, 3, 4],
                                    np.int32))),
      ('label_negative', 'support_labels',
       dict(support_labels=np.array([0, 1, 2, 3, -1, 0, 1, 2, 3, 4],
                                    np.int32))),
      ('length_mismatch', 'support_labels',
       dict(support_labels=np.arange(4, dtype=np.int32))),
      ('empty_support', 'support_images',
       dict(support_images=np.zeros((0, 20, 20, 1), np.float32),
            support_labels=np.zeros((0,), np.int32))),
      ('empty_query', 'query_images',
       dict(query_images=np.zeros((0, 20, 20, 1), np.float32))),
      ('query_rank_3', 'query_images',
       dict(query_images=np.ones((20, 20, 1), np.float32))),
      ('support_rank_5', 'support_images',
       dict(support_images=np.ones((10, 20, 20, 1, 1), np.float32))),
      ('support_scalar', 'support_images',
       dict(support_images=np.float32(0.5))),
      ('labels_rank_2', 'support_labels',
       dict(support_labels=np.zeros((10, 1), np.int32))),
      ('labels_scalar', 'support_labels',
       dict(support_labels=np.int32(0))),
      ('two_channels', 'support_images',
       dict(support_images=np.ones((10, 20, 20, 2), np.float32))),
      ('values_0_255', 'query_images',
       dict(query_images=np.full((3, 20, 20, 1), 255.0, np.float32))),
      ('zero_height', 'query_images',
       dict(query_images=np.ones((3, 0, 20, 1), np.float32))),
  )
  def test_bad_input_names_it_and_model_keeps_serving(self, name, overrides):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                f'{name}: '):
      self._classify(**overrides)
    self.assertAllEqual(self._classify()['classes'],
                        self.reference.argmax(-1))

  @parameterized.named_parameters(
      ('rank_2', 'support_images', 'support_images',
       lambda x: x.reshape(1, -1)),
      ('scalar', 'query_images', 'query_images', lambda x: x[0]),
      ('empty', 'query_images', 'query_images', lambda x: x[:0]),
      ('not_an_image', 'query_images', 'query_images',
       lambda x: np.array([b'', b'GIF89a', b'hello'] + list(x), dtype=object)),
  )
  def test_bad_encoded_input_names_it(self, name, key, change):
    images = fixtures.pngs(self.support_u8 if key == 'support_images'
                   else self.query_u8)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, f'{name}: '):
      self._classify(signature=serving_modules.ENCODED_SIGNATURE,
                     **{key: change(images)})
    self.assertAllEqual(
        self._classify(signature=serving_modules.ENCODED_SIGNATURE)['classes'],
        self.reference.argmax(-1))

  @parameterized.named_parameters(
      ('rank_3', np.ones((20, 20, 1), np.float32)),
      ('empty', np.ones((0, 20, 20, 1), np.float32)),
      ('channels', np.ones((2, 20, 20, 4), np.float32)),
      ('range', np.full((2, 20, 20, 1), -1.0, np.float32)),
  )
  def test_adapted_learner_bad_input_names_it(self, images):
    signature = self.learner.signatures['serving_default']
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'images: '):
      signature(images=tf.constant(images))
    self.assertAllEqual(signature(images=tf.constant(self.query))['classes'],
                        self.reference.argmax(-1))

  def test_make_adapted_learner_checks_arguments(self):
    with self.assertRaisesRegex(ValueError, 'class_names'):
      serving_modules.make_adapted_learner(self.rule, self.config, self.support,
                                           self.labels,
                                           fixtures.CLASS_NAMES[:4])
    with self.assertRaisesRegex(ValueError, 'support_labels'):
      serving_modules.make_adapted_learner(self.rule, self.config, self.support,
                                           self.labels + 1,
                                           fixtures.CLASS_NAMES)

  # ------------------------------------------------------------ versioning

  def test_versions_are_consecutive_integers_without_leftovers(self):
    base = os.path.join(self.tmp, 'versions')
    os.makedirs(os.path.join(base, '7'))
    os.makedirs(os.path.join(base, 'not_a_version'))
    self.assertEqual(serving_export.next_version(base), 8)
    first = serving_export.export_adapt_and_classify(self.rule, self.config,
                                                     base)
    second = serving_export.export_adapt_and_classify(self.rule, self.config,
                                                      base)
    self.assertEqual([os.path.basename(first),
                      os.path.basename(second)], ['8', '9'])
    self.assertCountEqual(os.listdir(base), ['7', '8', '9', 'not_a_version'])
    self.assertTrue(tf.saved_model.contains_saved_model(second))
    self.assertEqual(serving_export.next_version(os.path.join(base, 'none')), 1)

  def _conv_ops_dtypes(self, path):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
      proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    nodes = list(graph.node)
    for function in graph.library.function:
      nodes.extend(function.node_def)
    return {tf.dtypes.as_dtype(node.attr['T'].type).name
            for node in nodes if node.op == 'Conv2D'}

  def test_exports_run_float32_whatever_the_run_trained_with(self):
    bf16_run = dataclasses.replace(
        self.config, inner_loop=dataclasses.replace(self.config.inner_loop,
                                                    conv_dtype='bfloat16'))
    base = os.path.join(self.tmp, 'precision')
    default = serving_export.export_adapt_and_classify(self.rule, bf16_run,
                                                       base)
    asked = serving_export.export_adapt_and_classify(self.rule, bf16_run,
                                                     base, 'bfloat16')
    self.assertEqual(self._conv_ops_dtypes(default), {'float32'})
    # The first block's patches stay float32 (exact copies of pixels).
    self.assertEqual(self._conv_ops_dtypes(asked), {'bfloat16', 'float32'})
    self.assertEqual(serving_export.read_metadata(default)['conv_dtype'],
                     'float32')
    self.assertEqual(serving_export.read_metadata(asked)['conv_dtype'],
                     'bfloat16')
    inputs = dict(support_images=self.support, support_labels=self.labels,
                  query_images=self.query)
    want = tf.saved_model.load(default).signatures['serving_default'](
        **{k: tf.constant(v) for k, v in inputs.items()})
    got = tf.saved_model.load(asked).signatures['serving_default'](
        **{k: tf.constant(v) for k, v in inputs.items()})
    self.assertAllClose(want['logits'], self.reference, rtol=1e-4, atol=1e-4)
    self.assertAllClose(got['probabilities'], want['probabilities'],
                        atol=0.05)
    with self.assertRaisesRegex(ValueError, "conv_dtype='auto'"):
      serving_modules.AdaptAndClassifyModule(self.rule, self.config, 'auto')

  def test_only_standard_ops(self):
    proto = saved_model_pb2.SavedModel()
    for path in (self.model_path, self.learner_path):
      with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
        proto.ParseFromString(f.read())
      graph = proto.meta_graphs[0].graph_def
      ops = {node.op for node in graph.node}
      for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
      self.assertIn('Assert', ops)
      self.assertEmpty(ops & {'PyFunc', 'PyFuncStateless', 'EagerPyFunc'})

  # -------------------------------------------------------- saved_model_cli

  def test_saved_model_cli_show_lists_signatures(self):
    result = subprocess.run(
        [_SAVED_MODEL_CLI, 'show', '--all', '--dir', self.model_path],
        check=True, capture_output=True, text=True,
        env=fixtures.subprocess_env())
    for text in ("signature_def['serving_default']",
                 "signature_def['encoded_images']", "inputs['support_images']",
                 "inputs['support_labels']", "inputs['query_images']",
                 "outputs['logits']", "outputs['probabilities']",
                 "outputs['classes']"):
      self.assertIn(text, result.stdout)

  @real_data.requires_omniglot
  def test_saved_model_cli_run_on_real_episode(self):
    episode = serving_benchmark.sample_raw_episode(
        real_data.OMNIGLOT_DIR,
        config_lib.EpisodeConfig(fixtures.NUM_WAYS, 1, 3), seed=1)
    files = {}
    for key, value in (('support_images', episode.support_images),
                       ('support_labels', episode.support_labels),
                       ('query_images', episode.query_images)):
      files[key] = os.path.join(self.tmp, f'cli_{key}.npy')
      np.save(files[key], value)
    outdir = os.path.join(self.tmp, 'cli_out')
    subprocess.run(
        [_SAVED_MODEL_CLI, 'run', '--dir', self.model_path, '--tag_set',
         'serve', '--signature_def', 'serving_default', '--inputs',
         ';'.join(f'{k}={v}' for k, v in files.items()), '--outdir', outdir,
         '--overwrite'],
        check=True, capture_output=True, env=fixtures.subprocess_env())
    reference = _reference_logits(
        self.rule, self.config,
        (episode.support_images * 255).round().astype(np.uint8),
        episode.support_labels,
        (episode.query_images * 255).round().astype(np.uint8))
    self.assertAllClose(np.load(os.path.join(outdir, 'logits.npy')),
                        reference, atol=1e-4)
    self.assertAllEqual(np.load(os.path.join(outdir, 'classes.npy')),
                        reference.argmax(-1))

  # --------------------------------------------------------------- clients

  def test_grpc_request_runs_through_signature(self):
    if importlib.util.find_spec('tensorflow_serving') is None:
      self.skipTest('tensorflow-serving-api is not installed')
    grpc_client = _load_script('grpc_client')
    for signature, support, query in (
        ('serving_default', self.support, self.query),
        ('encoded_images', list(fixtures.pngs(self.support_u8)),
         list(fixtures.pngs(self.query_u8)))):
      request = grpc_client.build_predict_request(
          support, self.labels, query, model_name='meta_lstm')
      self.assertEqual(request.model_spec.signature_name, signature)
      self.assertEqual(request.model_spec.name, 'meta_lstm')
      tensors = grpc_client.request_tensors(request)
      outputs = self.model.signatures[signature](
          **{k: tf.constant(v) for k, v in tensors.items()})
      self.assertAllClose(outputs['logits'], self.reference, atol=1e-4)
    request = grpc_client.build_classify_request(self.query)
    outputs = self.learner.signatures[request.model_spec.signature_name](
        **{k: tf.constant(v)
           for k, v in grpc_client.request_tensors(request).items()})
    self.assertAllEqual(outputs['classes'], self.reference.argmax(-1))

  def test_rest_request_from_folder_runs_through_signature(self):
    rest = _load_script('make_rest_request')
    support_dir = self._write_support_folder(
        os.path.join(self.tmp, 'rest_support'))
    support, labels, class_names = rest.read_support_folder(support_dir)
    self.assertEqual(class_names, list(_FOLDER_NAMES))
    request = json.loads(json.dumps(rest.make_request(
        support, labels, list(fixtures.pngs(self.query_u8)))))
    self.assertEqual(request['signature_name'], 'encoded_images')
    decode = lambda items: np.array(
        [base64.b64decode(item['b64']) for item in items], dtype=object)
    outputs = self.model.signatures['encoded_images'](
        support_images=tf.constant(decode(
            request['inputs']['support_images'])),
        support_labels=tf.constant(request['inputs']['support_labels'],
                                   tf.int32),
        query_images=tf.constant(decode(request['inputs']['query_images'])))
    self.assertAllClose(outputs['logits'], self.reference, atol=1e-4)
    classify = rest.make_classify_request(list(fixtures.pngs(self.query_u8)))
    outputs = self.learner.signatures['encoded_images'](images=tf.constant(
        decode(classify['instances'])))
    self.assertAllEqual(outputs['classes'], self.reference.argmax(-1))

  def test_predict_request_example_runs(self):
    with open(os.path.join(_REPO, 'export', 'predict_request.json')) as f:
      request = json.load(f)
    inputs = request['inputs']
    outputs = self.model.signatures[request['signature_name']](
        support_images=tf.constant(inputs['support_images'], tf.float32),
        support_labels=tf.constant(inputs['support_labels'], tf.int32),
        query_images=tf.constant(inputs['query_images'], tf.float32))
    self.assertEqual(outputs['probabilities'].shape,
                     [len(inputs['query_images']), fixtures.NUM_WAYS])

  # ----------------------------------------------------- folders, workdirs

  def test_load_support_folder(self):
    root = os.path.join(self.tmp, 'folder')
    rng = np.random.default_rng(3)
    for name, count in (('b_class', 2), ('a_class', 1)):
      os.makedirs(os.path.join(root, name))
      for i in range(count):
        with open(os.path.join(root, name, f'{i}.png'), 'wb') as f:
          f.write(fixtures.png(fixtures.natural_images(rng, 1, channels=3)[0]))
    with open(os.path.join(root, 'b_class', 'notes.txt'), 'w') as f:
      f.write('not an image')
    images, labels, class_names = serving_support.load_support_folder(root)
    self.assertEqual(class_names, ['a_class', 'b_class'])
    self.assertAllEqual(labels, [0, 1, 1])
    self.assertEqual(images.shape, (3, 20, 20, 1))
    self.assertBetween(images.min(), 0.0, 1.0)
    self.assertEqual(images.max(), 1.0)

    with open(os.path.join(root, 'a_class', 'big.png'), 'wb') as f:
      f.write(fixtures.png(fixtures.natural_images(rng, 1, size=30)[0]))
    images, _, _ = serving_support.load_support_folder(root)
    self.assertIsInstance(images, list)
    self.assertEqual(serving_modules.preprocess_support(images, 12).shape,
                     [4, 12, 12, 1])

    os.makedirs(os.path.join(root, 'c_empty'))
    with self.assertRaisesRegex(ValueError, 'c_empty'):
      serving_support.load_support_folder(root)
    with self.assertRaisesRegex(ValueError, 'no class subfolder'):
      serving_support.load_support_folder(os.path.join(root, 'c_empty'))

  def _write_support_folder(self, root: str) -> str:
    """The support set as root/<folder name>/<i>.png; returns root."""
    for i, (image, label) in enumerate(zip(self.support_u8, self.labels)):
      class_dir = os.path.join(root, _FOLDER_NAMES[label])
      os.makedirs(class_dir, exist_ok=True)
      with open(os.path.join(class_dir, f'{i:02d}.png'), 'wb') as f:
        f.write(fixtures.png(image))
    return root

  def _make_workdir(self) -> str:
    workdir = os.path.join(self.tmp, 'workdir')
    if not os.path.exists(workdir):
      workdir_lib.write_json(os.path.join(workdir, workdir_lib.CONFIG_FILE),
                             self.config.to_dict())
      manager = tf.train.CheckpointManager(
          tf.train.Checkpoint(layer=self.rule),
          os.path.join(workdir, workdir_lib.BEST_DIR), max_to_keep=1)
      manager.save()
      self._write_support_folder(os.path.join(workdir, 'support'))
      two_classes = os.path.join(workdir, 'two_classes')
      for name in ('a', 'b'):
        os.makedirs(os.path.join(two_classes, name))
        with open(os.path.join(two_classes, name, '0.png'), 'wb') as f:
          f.write(fixtures.png(self.support_u8[0]))
    return workdir

  def test_export_from_workdir(self):
    workdir = self._make_workdir()
    path = serving_export.export_from_workdir(workdir)
    self.assertEqual(path, os.path.join(workdir, 'export', '1'))
    outputs = tf.saved_model.load(path).signatures['serving_default'](
        support_images=tf.constant(self.support),
        support_labels=tf.constant(self.labels),
        query_images=tf.constant(self.query))
    self.assertAllClose(outputs['logits'], self.reference, atol=1e-4)

    path = serving_export.export_from_workdir(
        workdir, serving_modules.ADAPTED_LEARNER,
        support_dir=os.path.join(workdir, 'support'))
    self.assertEqual(path, os.path.join(workdir, 'export_adapted_learner', '1'))
    learner = tf.saved_model.load(path)
    outputs = learner.signatures['serving_default'](
        images=tf.constant(self.query))
    self.assertAllClose(outputs['probabilities'], _softmax(self.reference),
                        atol=1e-5)
    self.assertAllEqual(
        outputs['class_names'].numpy().astype(str),
        np.array(_FOLDER_NAMES)[self.reference.argmax(-1)])

  @parameterized.named_parameters(
      ('no_workdir', 'workdir', lambda w: dict(workdir=w + '_missing')),
      ('bad_model', 'model', lambda w: dict(workdir=w, model='other')),
      ('missing_support_dir', 'support_dir',
       lambda w: dict(workdir=w, model='adapted_learner')),
      ('support_dir_for_adapt_and_classify', 'support_dir',
       lambda w: dict(workdir=w, support_dir=w)),
      ('empty_support_dir', 'support_dir',
       lambda w: dict(workdir=w, model='adapted_learner',
                      support_dir=os.path.join(w, 'best'))),
      ('wrong_number_of_classes', 'support_dir',
       lambda w: dict(workdir=w, model='adapted_learner',
                      support_dir=os.path.join(w, 'two_classes'))),
      ('bad_checkpoint', 'checkpoint',
       lambda w: dict(workdir=w, checkpoint=os.path.join(w, 'nothing'))),
      ('bad_conv_dtype', 'conv_dtype',
       lambda w: dict(workdir=w, conv_dtype='float16')),
      ('bad_limit', 'max_image_height',
       lambda w: dict(workdir=w, limits=serving_validation.ServingLimits(
           max_image_height=0))),
  )
  def test_export_from_workdir_names_bad_argument(self, argument, kwargs):
    workdir = self._make_workdir()
    with self.assertRaises(serving_export.ExportArgumentError) as caught:
      serving_export.export_from_workdir(**kwargs(workdir))
    self.assertEqual(caught.exception.argument, argument)
    self.assertStartsWith(str(caught.exception), f'{argument}=')

  def test_export_main_binary(self):
    workdir = self._make_workdir()
    export_dir = os.path.join(self.tmp, 'binary_export')
    command = [sys.executable, '-m', 'meta_lstm_tf.bin.export',
               f'--workdir={workdir}', f'--export_dir={export_dir}']
    result = subprocess.run(
        command + ['--max_query_images=9', '--max_image_width=640'],
        capture_output=True, text=True, env=fixtures.subprocess_env(),
        cwd=self.tmp)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(result.stdout.strip().splitlines()[-1],
                     os.path.join(export_dir, '1'))
    self.assertEqual(
        serving_export.read_metadata(os.path.join(export_dir, '1'))
        ['serving_limits'],
        dict(max_support_images=500, max_query_images=9,
             max_image_height=1024, max_image_width=640))
    result = subprocess.run(command + ['--model=adapted_learner'],
                            capture_output=True, text=True,
                            env=fixtures.subprocess_env(), cwd=self.tmp)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn('--support_dir', result.stderr)
    result = subprocess.run(command + ['--max_support_images=0'],
                            capture_output=True, text=True,
                            env=fixtures.subprocess_env(), cwd=self.tmp)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn('max_support_images', result.stderr)


class UpdateRuleExportTest(tf.test.TestCase, parameterized.TestCase):
  """Every update rule exports through the same path and serves, in a fresh
  process, what evaluation computes in-process."""

  @parameterized.parameters('sgd', 'meta_sgd')
  def test_rule_exports_and_serves_in_fresh_process(self, rule):
    tmp = tempfile.mkdtemp(prefix='test_rule_export_')
    self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    base = fixtures.tiny_config()
    config = dataclasses.replace(
        base, meta_learner=dataclasses.replace(
            base.meta_learner, update_rule=rule, inner_lr=0.3)).validate()
    update_rule = rules.make_rule(config)
    self.assertEqual(
        type(update_rule).__name__, {
            'sgd': 'SGDRule',
            'meta_sgd': 'MetaSGDRule'
        }[rule])
    # Move every variable off its initial value: the exports must hold the
    # update_rule's current weights (theta_0, and Meta-SGD's rates).
    rng = np.random.default_rng(1)
    for variable in update_rule.variables:
      variable.assign(
          variable.numpy() *
          (1 + 0.2 * rng.standard_normal(variable.shape)).astype(np.float32))
    labels = rng.permutation(np.repeat(np.arange(fixtures.NUM_WAYS), 2)).astype(
        np.int32)
    support_u8 = fixtures.natural_images(rng, len(labels))
    query_u8 = fixtures.natural_images(rng, 6)
    reference = _reference_logits(update_rule, config, support_u8, labels,
                                  query_u8)
    model_path = serving_export.export_adapt_and_classify(
        update_rule, config, os.path.join(tmp, rule))
    learner_path = serving_export.export_adapted_learner(
        update_rule, config,
        support_u8.astype(np.float32) / 255.0, labels, fixtures.CLASS_NAMES,
        os.path.join(tmp, rule + '_adapted'))
    self.assertEqual(
        serving_export.read_metadata(model_path)['config']['meta_learner']
        ['update_rule'], rule)
    inputs = os.path.join(tmp, 'inputs.npz')
    outputs = os.path.join(tmp, 'outputs.npz')
    np.savez(inputs, support=support_u8.astype(np.float32) / 255.0,
             labels=labels, query=query_u8.astype(np.float32) / 255.0,
             support_png=fixtures.pngs(support_u8),
             query_png=fixtures.pngs(query_u8))
    subprocess.run(
        [sys.executable, '-c', _RELOAD_SCRIPT, model_path, learner_path,
         inputs, outputs],
        check=True, env=fixtures.subprocess_env(), cwd=tmp, capture_output=True)
    got = dict(np.load(outputs, allow_pickle=True))
    for signature in ('serving_default', 'encoded_images'):
      self.assertAllClose(got[f'{signature}/logits'], reference, atol=1e-4)
      self.assertAllClose(got[f'learner/{signature}/probabilities'],
                          _softmax(reference), atol=1e-5)
    # The adaptation did something: theta_0 alone classifies differently.
    theta0_logits, _ = learner_lib.apply(
        learner_lib.unflatten(tf.convert_to_tensor(update_rule.initial_params),
                              update_rule.param_spec),
        image_ops.preprocess_images(query_u8, config.learner.image_size),
        config.learner)
    self.assertNotAllClose(theta0_logits, reference, atol=1e-3)


class ServingLatencyBenchmarkTest(tf.test.TestCase):

  def test_synthetic_episode_shapes(self):
    episode = serving_benchmark.sample_raw_episode(
        None, config_lib.EpisodeConfig(5, 1, 15), seed=0, image_side=30)
    self.assertEqual(episode.support_images.shape, (5, 30, 30, 1))
    self.assertEqual(episode.query_images.shape, (75, 30, 30, 1))
    self.assertAllEqual(episode.support_labels, np.arange(5))

  def test_benchmark_times_the_calls_it_makes(self):
    calls = []
    timed = serving_benchmark._time_calls

    def counting(fn, episodes, num_calls, warmup):
      latencies = timed(fn, episodes, num_calls, warmup)
      calls.append(latencies)
      return latencies

    with mock.patch.object(serving_benchmark, '_time_calls', counting):
      result = serving_benchmark.serving_latency_benchmark(
          None, num_calls=3, warmup=1, num_episodes=1, inner_steps=2)
    # One timing per setting (5-way, 20-way) and export precision (float32,
    # bfloat16), num_calls latencies each.
    self.assertLen(calls, 4)
    for latencies in calls:
      self.assertLen(latencies, 3)
    self.assertEqual(result['serving_latency_ms_p50_5w1s'],
                     float(np.percentile(calls[0], 50)))
    self.assertEqual(result['serving_latency_ms_p95_5w1s'],
                     float(np.percentile(calls[0], 95)))
    self.assertEqual(result['serving_latency_ms_p50_5w1s_bfloat16'],
                     float(np.percentile(calls[1], 50)))
    self.assertEqual(result['serving_latency_ms_p50_20w1s'],
                     float(np.percentile(calls[2], 50)))
    self.assertEqual(result['serving_latency_ms_p50_20w1s_bfloat16'],
                     float(np.percentile(calls[3], 50)))
    self.assertGreaterEqual(result['serving_latency_ms_p95_5w1s'],
                            result['serving_latency_ms_p50_5w1s'])
    self.assertEqual(result['serving_inner_steps'], 2)
    self.assertEqual(result['serving_images'], 'synthetic')

  def test_episode_from_archive(self):
    root = tempfile.mkdtemp(prefix='test_export_lib_archive_')
    self.addCleanup(shutil.rmtree, root, ignore_errors=True)
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(os.path.join(root, 'images_evaluation.zip'),
                         'w') as archive:
      for character in ('character01', 'character02', 'character03'):
        for drawing in range(3):
          archive.writestr(
              f'images_evaluation/Alpha/{character}/0001_{drawing:02d}.png',
              fixtures.png(fixtures.natural_images(rng, 1, size=16)[0]))
    episode = serving_benchmark.sample_raw_episode(
        root, config_lib.EpisodeConfig(2, 1, 2), seed=0)
    self.assertEqual(episode.support_images.shape, (2, 16, 16, 1))
    self.assertEqual(episode.query_images.shape, (4, 16, 16, 1))
    encoded = serving_benchmark.sample_raw_episode(
        root, config_lib.EpisodeConfig(2, 1, 2), seed=0, encoded=True)
    self.assertTrue(encoded.support_images[0].startswith(b'\x89PNG'))

  @real_data.requires_omniglot
  def test_real_episode_is_natural_images(self):
    episode = serving_benchmark.sample_raw_episode(
        real_data.OMNIGLOT_DIR, config_lib.EpisodeConfig(5, 1, 2), seed=0)
    self.assertEqual(episode.query_images.shape, (10, 105, 105, 1))
    # White background, dark strokes.
    self.assertGreater(np.median(episode.support_images), 0.99)
    self.assertEqual(episode.support_images.min(), 0.0)


if __name__ == '__main__':
  tf.test.main()
