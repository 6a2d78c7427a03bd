"""The binaries: `train` (the main job, also `python -m meta_lstm_tf.main`),
`evaluate` (retest a finished run), `export` (a SavedModel for TF Serving),
`results` (the results grid and its report) and `benchmark` (speed, also
`python -m meta_lstm_tf.benchmark`), and what they share: `cli` (flags from
the configs' declarations, flagfiles, the one error handler) and
`verbosity` (log levels). Library code never imports this package.
"""
