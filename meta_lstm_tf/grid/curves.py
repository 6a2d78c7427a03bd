"""Validation curves of a grid's runs: read from TensorBoard events, and
plotted against meta-training time."""

import io
import os
from typing import Dict, List, NamedTuple, Sequence

import tensorflow as tf

from meta_lstm_tf.training import workdir as workdir_lib
from meta_lstm_tf.grid import spec as grid_spec

class CurvePoint(NamedTuple):
  """One validation of a run."""
  step: int
  train_seconds: float
  accuracy: float


def _scalar(value) -> float:
  if value.HasField('tensor'):
    return float(tf.make_ndarray(value.tensor))
  return float(value.simple_value)


def read_valid_curve(workdir: str) -> List[CurvePoint]:
  """Validation accuracy against meta-training time, from the run's logs.

  Reads the `accuracy` and `train_seconds` scalars of WORKDIR/logs/valid.
  A resumed run may have logged a step twice: the last write wins.

  Returns:
    Points sorted by step; [] when there are no logs.
  """
  log_dir = os.path.join(workdir, workdir_lib.LOG_DIR, 'valid')
  if not tf.io.gfile.isdir(log_dir):
    return []
  events = []
  for name in sorted(tf.io.gfile.listdir(log_dir)):
    if 'tfevents' not in name:
      continue
    for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag in ('accuracy', 'train_seconds'):
          events.append((event.wall_time, event.step, value.tag,
                         _scalar(value)))
  by_step: Dict[int, dict] = {}
  for _, step, tag, value in sorted(events, key=lambda e: e[0]):
    by_step.setdefault(step, {})[tag] = value
  return [CurvePoint(step, values['train_seconds'], values['accuracy'])
          for step, values in sorted(by_step.items())
          if 'train_seconds' in values and 'accuracy' in values]


def write_valid_curves_plot(curves: Dict[str, Dict[str, List[CurvePoint]]],
                            baseline_levels: Dict[str, Dict[str, float]],
                            settings: Sequence[grid_spec.Setting],
                            path: str) -> str:
  """Validation accuracy against training seconds, one subplot per setting.

  Args:
    curves: {setting name: {rule: points}}, one line per rule.
    baseline_levels: {setting name: {baseline: meta-valid accuracy}}, drawn
      as dashed horizontal lines.
    settings: the subplots, in order.
    path: the PNG to write (atomically; `tf.io.gfile`, any file system).

  Returns:
    path.
  """
  # Only the report needs matplotlib (the `results` extra); the object API
  # with the Agg canvas touches no global backend state.
  # pylint: disable-next=g-import-not-at-top
  from matplotlib.backends import backend_agg
  from matplotlib import figure  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(4.5 * len(settings), 3.6), layout='tight')
  backend_agg.FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(settings), squeeze=False)[0]
  colours = {}
  for ax, setting in zip(axes, settings):
    for rule, points in curves.get(setting.name, {}).items():
      if not points:
        continue
      colour = colours.setdefault(rule, f'C{len(colours)}')
      ax.plot([p.train_seconds for p in points],
              [100 * p.accuracy for p in points], marker='o', markersize=3,
              color=colour, label=rule)
    for baseline, level in baseline_levels.get(setting.name, {}).items():
      if level is None:
        continue
      colour = colours.setdefault(baseline, f'C{len(colours)}')
      ax.axhline(100 * level, linestyle='--', linewidth=1, color=colour,
                 label=f'{baseline} (no meta-training)')
    ax.set_title(setting.title)
    ax.set_xlabel('meta-training time (s)')
    ax.set_ylabel('meta-valid accuracy (%)')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize='small')
  png = io.BytesIO()
  fig.savefig(png, format='png', dpi=100)
  workdir_lib.write_atomic(path, png.getvalue())
  return path
