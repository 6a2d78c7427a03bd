"""Installs meta_lstm_tf: `pip install .` (tests: `pip install '.[test]'`)."""

import setuptools

setuptools.setup(
    name='meta_lstm_tf',
    version='0.1.0',
    description=('The meta-learner LSTM of Ravi & Larochelle (ICLR 2017) for '
                 'few-shot Omniglot, in TensorFlow 2 / Keras 3.'),
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['meta_lstm_tf',
                                               'meta_lstm_tf.*']),
    python_requires='>=3.9',
    install_requires=[
        'tensorflow>=2.16',
        'keras>=3',
        'tensorflow-datasets>=4.9',
        'absl-py>=1.0',
        'numpy>=1.23',
        # Without it every tf.summary.* call raises TBNotInstalledError.
        'tensorboard>=2.16',
        # tensorflow-datasets 4.9.10 imports it and nothing else pulls it in.
        'importlib_resources',
    ],
    extras_require={
        # tensorflow-serving-api: the gRPC client's test builds a real
        # PredictRequest; matplotlib: the grid report's plot is tested.
        'test': ['pytest>=7', 'tensorflow-serving-api>=2.16',
                 'matplotlib>=3.6'],
        'gpu': ['tensorflow[and-cuda]>=2.16'],
        'serving': ['tensorflow-serving-api>=2.16'],
        # The plot of `python -m meta_lstm_tf.results` (imported only there).
        'results': ['matplotlib>=3.6'],
    },
    entry_points={
        'console_scripts': [
            'meta-lstm-train=meta_lstm_tf.main:run',
            'meta-lstm-benchmark=meta_lstm_tf.benchmark:run',
            'meta-lstm-export=meta_lstm_tf.export_main:run',
            'meta-lstm-results=meta_lstm_tf.results:run',
            'meta-lstm-evaluate=meta_lstm_tf.evaluate:run',
        ],
    },
)
