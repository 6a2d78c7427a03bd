"""Shared value types.

Shape glossary (used across the package):
  B: meta-batch size (episodes per meta-train step).
  N: ways (classes per episode), K: shots (support examples per class),
  Q: queries per class.
  S = N * K support examples, Q_total = N * Q query examples.
  H, W, C: image height, width, channels (C = 1 for Omniglot).
  P: number of learner coordinates (length of the flat parameter vector).
  T: inner (adaptation) steps.
"""

from typing import NamedTuple

import tensorflow as tf


class Episode(NamedTuple):
  """One few-shot episode (or a meta-batch of them, with a leading B axis).

  Attributes:
    support_images: float32 [S, H, W, C] in [0, 1], strokes = 1.
    support_labels: int32 [S] in [0, N).
    query_images: float32 [N * Q, H, W, C].
    query_labels: int32 [N * Q] in [0, N).
  """
  support_images: tf.Tensor
  support_labels: tf.Tensor
  query_images: tf.Tensor
  query_labels: tf.Tensor


class BatchNormStats(NamedTuple):
  """Per-episode running batch-norm statistics, one entry per conv block.

  Attributes:
    means: tuple of float [F] tensors, one per block.
    variances: tuple of float [F] tensors, one per block.
    count: float scalar, number of support passes accumulated so far.
  """
  means: tuple
  variances: tuple
  count: tf.Tensor


class AdaptationResult(NamedTuple):
  """What `inner_loop.adapt` returns.

  Attributes:
    params: float [P] adapted learner parameters theta_T.
    bn_stats: `BatchNormStats` accumulated over the support passes.
    support_losses: float [T + 1] support loss at theta_0 .. theta_T.
    forget_gate_mean: float [T] mean forget gate per step.
    input_gate_mean: float [T] mean input gate per step.
    forget_gates: float [T, P] forget gates (only when requested, else [0, 0]).
    input_gates: float [T, P] input gates (only when requested, else [0, 0]).
  """
  params: tf.Tensor
  bn_stats: BatchNormStats
  support_losses: tf.Tensor
  forget_gate_mean: tf.Tensor
  input_gate_mean: tf.Tensor
  forget_gates: tf.Tensor
  input_gates: tf.Tensor
