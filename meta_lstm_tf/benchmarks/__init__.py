"""Benchmarks behind `python -m meta_lstm_tf.benchmark`: the meta-train step
(`training`), the episode pipeline (`pipeline`) and serving latency
(`serving`)."""
