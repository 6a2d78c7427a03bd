"""`MetaLearner.fit` on real Omniglot with a user's Keras model: above
chance, TensorBoard and BackupAndRestore (interrupted and resumed), export,
and classification through the loaded SavedModel."""

import glob
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import meta_lstm_tf
from tests.fixtures import real_data

pytestmark = pytest.mark.skipif(not real_data.OMNIGLOT_DIR,
                                reason=real_data.SKIP_REASON)

WAYS, SHOTS, QUERIES = 5, 1, 5


def user_model():
  """Not the built-in learner: 3 blocks of 24 filters, a Dense hidden layer
  before the head, Keras BatchNormalization."""
  layers = [keras.Input((28, 28, 1))]
  for _ in range(3):
    layers += [keras.layers.Conv2D(24, 3, padding='same'),
               keras.layers.BatchNormalization(),
               keras.layers.ReLU(), keras.layers.MaxPooling2D(2)]
  layers += [keras.layers.Flatten(), keras.layers.Dense(32),
             keras.layers.BatchNormalization(), keras.layers.ReLU(),
             keras.layers.Dense(WAYS)]
  return keras.Sequential(layers)


class _Interrupt(keras.callbacks.Callback):
  """Stops a fit at the end of an epoch as a kill would."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      raise KeyboardInterrupt(f'killed after epoch {epoch}')


class _Epochs(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.epochs = []

  def on_epoch_begin(self, epoch, logs=None):
    self.epochs.append(epoch)


def test_fit_a_user_model_resume_export_and_serve(tmp_path):
  tf.keras.utils.set_random_seed(0)
  pools = meta_lstm_tf.class_pools('omniglot',
                                   omniglot_dir=real_data.OMNIGLOT_DIR)
  train = meta_lstm_tf.training_episodes(
      pools.meta_train, num_ways=WAYS, num_shots=SHOTS, num_queries=QUERIES,
      batch_size=2)
  valid = meta_lstm_tf.evaluation_episodes(
      pools.meta_valid, num_ways=WAYS, num_shots=SHOTS, num_queries=QUERIES,
      num_episodes=40, batch_size=8)
  model = meta_lstm_tf.MetaLearner(user_model(), rule='meta_lstm',
                                   inner_steps=3)
  model.compile(optimizer=keras.optimizers.Adam(0.003, global_clipnorm=0.25))
  backup, logs = str(tmp_path / 'backup'), str(tmp_path / 'logs')

  def callbacks(*extra):
    return [keras.callbacks.BackupAndRestore(backup),
            keras.callbacks.TensorBoard(logs), *extra]

  with pytest.raises(KeyboardInterrupt):
    model.fit(train, steps_per_epoch=40, epochs=3, validation_data=valid,
              callbacks=callbacks(_Interrupt(epoch=1)), verbose=0)
  interrupted = [v.numpy().copy() for v in model.meta_variables]
  # A new process would build a new model; so does the test.
  resumed = meta_lstm_tf.MetaLearner.from_config(model.get_config())
  resumed.compile(optimizer=keras.optimizers.Adam(0.003,
                                                  global_clipnorm=0.25))
  epochs = _Epochs()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    history = resumed.fit(train, steps_per_epoch=40, epochs=3,
                          validation_data=valid,
                          callbacks=callbacks(epochs), verbose=0)
  # The optimizer's state (Adam's moments) came back too.
  skipped = [str(w.message) for w in caught
             if 'Skipping variable loading' in str(w.message)]
  assert not skipped, skipped
  assert epochs.epochs == [2], epochs.epochs  # Epochs 0 and 1 were done.
  # It resumed from the backup, not from scratch: its first update moved
  # the interrupted weights, not fresh ones.
  fresh = meta_lstm_tf.MetaLearner.from_config(model.get_config())
  start = [v.numpy() for v in fresh.meta_variables]
  assert not all(np.allclose(a, b) for a, b in zip(start, interrupted))
  distance_resumed = sum(float(np.abs(v.numpy() - w).sum()) for v, w in zip(
      resumed.meta_variables, interrupted))
  distance_fresh = sum(float(np.abs(v.numpy() - w).sum()) for v, w in zip(
      resumed.meta_variables, start))
  assert distance_resumed < distance_fresh

  # Clearly above chance (0.2) on held-out classes.
  test = meta_lstm_tf.evaluation_episodes(
      pools.meta_test, num_ways=WAYS, num_shots=SHOTS, num_queries=QUERIES,
      num_episodes=40, batch_size=8, seed=5)
  scores = resumed.evaluate(test, return_dict=True, verbose=0)
  assert scores['accuracy'] > 0.45, scores
  assert history.history['val_accuracy'][-1] > 0.45, history.history

  # TensorBoard wrote the epoch metrics of both runs.
  events = glob.glob(os.path.join(logs, 'train', 'events.out.tfevents.*'))
  assert events
  tags = set()
  for path in events:
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  assert {'epoch_loss', 'epoch_accuracy'} <= tags, tags

  # Export, load, and classify natural images (white background) through
  # the SavedModel: the same classes as the in-process model.
  path = resumed.export(str(tmp_path / 'export'))
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures['serving_default']
  correct = agree = total = 0
  for batch in test.take(2):
    for b in range(batch.support_images.shape[0]):
      out = serve(support_images=1.0 - batch.support_images[b],
                  support_labels=batch.support_labels[b],
                  query_images=1.0 - batch.query_images[b])
      mine = resumed.classify(batch.support_images[b],
                              batch.support_labels[b],
                              batch.query_images[b])
      served = out['classes'].numpy()
      agree += int(np.sum(served == np.argmax(mine, -1)))
      correct += int(np.sum(served == batch.query_labels[b].numpy()))
      total += served.size
  assert agree / total > 0.97, agree / total
  assert correct / total > 0.45, correct / total
