"""meta_lstm_tf: the meta-learner LSTM of Ravi & Larochelle (ICLR 2017).

Layout, from the maths outwards:

  learner.py, preprocessing.py   the functional conv learner; gradient and
                                 loss preprocessing
  rules/                         update rules (meta_lstm, sgd, meta_sgd) behind
                                 one interface, and their registry
  inner_loop.py                  the one `adapt`: a rule adapting the learner
                                 to a support set
  train_steps.py, distribute.py  compiled meta-train / evaluation steps, and
                                 the tf.distribute strategies
  evaluation.py, evaluate_lib.py fixed episodes, batching, mean and 95% CI;
                                 retesting a finished run
  train_lib.py, stopping.py,     one resumable run: meta-train, validate, test,
  summaries.py, progress.py,     export; its early stops and the binaries'
  workdir.py, file_lock.py       exit, TensorBoard, progress lines, workdir
                                 layout and checks, one process per workdir
  data/                          data sources, class splits, episodes
  baselines/                     pretraining, fine-tuning, nearest neighbour
  serving/                       SavedModels for TF Serving
  grid/                          the results grid and its report
  benchmarks/                    speed and memory measurements
  config.py, cli.py, runtime.py  frozen configs; flags -> configs (the only
                                 reader of FLAGS; flagfiles from the
                                 installed configs/); thread pools
  verbosity.py                   the binaries' log levels (quiet by default)
  main.py, results.py, evaluate.py, export_main.py, benchmark.py
                                 the binaries (`python -m meta_lstm_tf.X`)
"""

__version__ = '0.1.0'
