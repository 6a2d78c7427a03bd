"""The results grid: update rules and baselines x N-way K-shot settings, run
on the same episodes and reported (`python -m meta_lstm_tf.bin.results`).

    spec.py     named grids, settings, cells and the grid root's files
    runner.py   running (or resuming) every cell and the baselines
    curves.py   validation curves from the runs' TensorBoard events, plotted
    report.py   tables, paired comparison, results.md and the README block
"""
