"""meta_lstm_tf: the meta-learner LSTM of Ravi & Larochelle (ICLR 2017).

The Python API (imported on first use, so `import meta_lstm_tf` is cheap):

  MetaLearner             a keras.Model: `fit()` meta-trains an update rule
                          for any Keras learner, `classify()`, `export()`
  MetaLSTMRule, SGDRule,  the update rules (the meta-LSTM; MAML's SGD;
  MetaSGDRule, RULES      Meta-SGD), Keras layers owning theta_0
  KerasLearner,           learners behind one interface: any built Keras
  ConvLearner, conv_net   model; the built-in conv net (fast path); the
                          built-in architecture as a Keras model
  LearnerConfig,          the built-in learner's shape; episode shapes
  EpisodeConfig
  class_pools,            data: the three meta-splits' classes of Omniglot,
  training_episodes,      mini-ImageNet or an image folder, and episode
  evaluation_episodes     datasets over them
  adapt                   the one inner loop (`inner_loop.adapt`)
  export_adapt_and_classify
                          the TF Serving SavedModel of a trained rule

    import keras, meta_lstm_tf
    pools = meta_lstm_tf.class_pools('omniglot', omniglot_dir='omniglot/')
    learner = keras.Sequential([keras.Input((28, 28, 1)), ...,
                                keras.layers.Dense(5)])
    model = meta_lstm_tf.MetaLearner(learner, rule='meta_lstm')
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(meta_lstm_tf.training_episodes(pools.meta_train),
              steps_per_epoch=500, epochs=4)

Layout, from the maths outwards:

  learners/               the learner interface: the built-in conv net
                          (`conv_ops.py`, its functional maths), any Keras
                          model
  rules/                  update rules (meta_lstm, sgd, meta_sgd) behind one
                          interface, their registry, the meta-LSTM's input
                          preprocessing
  inner_loop.py           the one `adapt`: a rule adapting the learner to a
                          support set; the episode loss
  evaluation.py           every scoring of fixed episodes: seeds, the eval
                          step, batching, mean and 95% CI, retesting a run
  meta_learner.py         `MetaLearner`, the Keras-model front end
  training/               one resumable run: the loop of named actions, the
                          meta-train step (every strategy), checkpoints and
                          their key, workdir records, stops, TensorBoard
  config/                 frozen configs, each setting declared once
  data/                   class pools by source (omniglot/, photos/) behind
                          `data/pools.py`; episodes
  baselines/              pretraining, fine-tuning, nearest neighbour
  serving/                SavedModels for TF Serving
  grid/                   the results grid and its report
  benchmarks/             speed and memory measurements
  types.py, runtime.py,   shared tuples; thread pools and conv precision;
  file_lock.py            one process per directory
  bin/                    the binaries (train, evaluate, export, results,
                          benchmark, load_test; `python -m meta_lstm_tf.bin.X`)
                          and what they share: flags from the declarations,
                          the one error handler, log levels
  main.py, benchmark.py   `python -m meta_lstm_tf.main` / `.benchmark`: the
                          train and benchmark binaries under their first names
"""

import importlib

__version__ = '0.1.0'

# Public name -> (module, attribute), imported on first use (PEP 562): the
# binaries set TensorFlow's logging before anything imports it.
_PUBLIC = {
    'MetaLearner': ('meta_lstm_tf.meta_learner', 'MetaLearner'),
    'MetaLSTMRule': ('meta_lstm_tf.rules', 'MetaLSTMRule'),
    'SGDRule': ('meta_lstm_tf.rules', 'SGDRule'),
    'MetaSGDRule': ('meta_lstm_tf.rules', 'MetaSGDRule'),
    'UpdateRule': ('meta_lstm_tf.rules', 'UpdateRule'),
    'RULES': ('meta_lstm_tf.rules', 'RULES'),
    'KerasLearner': ('meta_lstm_tf.learners', 'KerasLearner'),
    'ConvLearner': ('meta_lstm_tf.learners', 'ConvLearner'),
    'conv_net': ('meta_lstm_tf.learners', 'conv_net'),
    'LearnerConfig': ('meta_lstm_tf.config', 'LearnerConfig'),
    'EpisodeConfig': ('meta_lstm_tf.config', 'EpisodeConfig'),
    'class_pools': ('meta_lstm_tf.data.datasets', 'class_pools'),
    'training_episodes': ('meta_lstm_tf.data.datasets', 'training_episodes'),
    'evaluation_episodes': ('meta_lstm_tf.data.datasets',
                            'evaluation_episodes'),
    'adapt': ('meta_lstm_tf.inner_loop', 'adapt'),
    'export_adapt_and_classify': ('meta_lstm_tf.serving.export',
                                  'export_adapt_and_classify'),
}

__all__ = ['__version__'] + sorted(_PUBLIC)


def __getattr__(name):
  if name not in _PUBLIC:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  module, attribute = _PUBLIC[name]
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value
  return value


def __dir__():
  return __all__
