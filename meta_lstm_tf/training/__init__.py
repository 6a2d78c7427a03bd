"""Meta-training one run: `train_lib.train_and_evaluate` and its parts.

  train_lib     the run: state, resume, the loop, test of the best, export
  actions       the loop's named actions: log, validate-and-keep-best,
                checkpoint, stop vote
  train_steps   the compiled meta-train step (one path for every strategy)
  distribute    tf.distribute strategies, datasets, votes
  schedules     the learning-rate schedule
  stopping      divergence, signals, and how the binaries exit
  summaries     TensorBoard
  progress      the progress bar / log lines
  workdir       the run directory: records, configs, checkpoints, exports
"""
