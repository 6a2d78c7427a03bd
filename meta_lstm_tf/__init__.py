"""meta_lstm_tf: the meta-learner LSTM of Ravi & Larochelle (ICLR 2017)."""

__version__ = '0.1.0'
