"""The functional conv learner and its flat coordinate view.

Shapes: S images [S, H, W, C]; N ways; F filters; P coordinates.

The learner is `num_blocks` x [3x3 conv (F filters, same padding) -> batch norm
-> ReLU -> 2x2 max-pool], then a linear layer to N logits. It is a pure
function of an explicit parameter nest with stable names:

    conv{b}/kernel [3, 3, C_in, F], conv{b}/bias [F],
    bn{b}/scale [F], bn{b}/offset [F], ..., linear/kernel [F * R * R, N],
    linear/bias [N]

(b = 1..num_blocks, R the spatial size after the last pool). The meta-LSTM sees
the same parameters as one flat vector [P]; `flatten` / `unflatten` are the
only place that maps between the two views.

`apply` is `head(features(...))`: `features` runs the conv blocks and returns
the flattened output of the last one [S, F * R * R] (the penultimate
features, used by the nearest-neighbour baseline), `head` the linear layer.

Batch norm computes the variance around the batch mean *without*
`stop_gradient` (unlike `tf.nn.moments`), so second derivatives through it are
exact. Running statistics are not parameters: they are per-episode state
(`types.BatchNormStats`) reset at the start of every episode and accumulated
over the support passes (see `inner_loop.adapt`).
"""

import collections
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import types


def param_spec(config: config_lib.LearnerConfig) -> 'collections.OrderedDict':
  """Ordered mapping name -> shape of every learner parameter."""
  spec = collections.OrderedDict()
  in_channels = config.channels
  size = config.image_size
  for block in range(1, config.num_blocks + 1):
    spec[f'conv{block}/kernel'] = (3, 3, in_channels, config.num_filters)
    spec[f'conv{block}/bias'] = (config.num_filters,)
    spec[f'bn{block}/scale'] = (config.num_filters,)
    spec[f'bn{block}/offset'] = (config.num_filters,)
    in_channels = config.num_filters
    size //= 2
  spec['linear/kernel'] = (config.num_filters * size * size, config.num_ways)
  spec['linear/bias'] = (config.num_ways,)
  return spec


def feature_spec(config: config_lib.LearnerConfig) -> 'collections.OrderedDict':
  """The part of `param_spec` that `features` reads: all but `linear/*`.

  It is a prefix of `param_spec`, so the flat feature parameters are the
  first coordinates of the flat [P] vector, whatever `num_ways` is.
  """
  return collections.OrderedDict(
      (name, shape) for name, shape in param_spec(config).items()
      if not name.startswith('linear/'))


def num_params(config: config_lib.LearnerConfig) -> int:
  """P, the number of learner coordinates."""
  return int(sum(np.prod(s) for s in param_spec(config).values()))


def init_params(config: config_lib.LearnerConfig,
                seed: int = 0) -> 'collections.OrderedDict':
  """Initial parameter nest (NumPy float32): Glorot-uniform kernels, zero
  biases and offsets, unit BN scales."""
  rng = np.random.default_rng(seed)
  params = collections.OrderedDict()
  for name, shape in param_spec(config).items():
    if name.endswith('/kernel'):
      receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
      fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
      limit = math.sqrt(6.0 / (fan_in + fan_out))
      value = rng.uniform(-limit, limit, size=shape)
    elif name.endswith('/scale'):
      value = np.ones(shape)
    else:
      value = np.zeros(shape)
    params[name] = value.astype(np.float32)
  return params


def flatten(params: dict, spec: dict) -> tf.Tensor:
  """Nest -> flat [P] vector, in `spec` order."""
  return tf.concat([tf.reshape(params[name], [-1]) for name in spec], axis=0)


def unflatten(flat: tf.Tensor, spec: dict) -> 'collections.OrderedDict':
  """Flat [P] vector -> nest, the inverse of `flatten`."""
  sizes = [int(np.prod(shape)) for shape in spec.values()]
  pieces = tf.split(flat, sizes, axis=0)
  return collections.OrderedDict(
      (name, tf.reshape(piece, shape))
      for (name, shape), piece in zip(spec.items(), pieces))


def init_bn_stats(config: config_lib.LearnerConfig,
                  dtype=tf.float32) -> types.BatchNormStats:
  """Fresh running statistics (mean 0, variance 1, no passes seen)."""
  zeros = tuple(tf.zeros([config.num_filters], dtype)
                for _ in range(config.num_blocks))
  ones = tuple(tf.ones([config.num_filters], dtype)
               for _ in range(config.num_blocks))
  return types.BatchNormStats(zeros, ones, tf.constant(0.0, dtype))


def accumulate_bn_stats(running: types.BatchNormStats,
                        batch: types.BatchNormStats,
                        momentum: Optional[float] = None
                        ) -> types.BatchNormStats:
  """Folds one support pass's batch statistics into the running statistics.

  running <- running + w * (batch - running), with w = 1 / n for the n-th
  pass when `momentum` is None (the mean over all passes) and
  w = max(1 / n, momentum) otherwise (an exponential moving average; 1.0
  keeps only the latest pass). The first pass always replaces the (0, 1)
  reset values.
  """
  count = running.count + 1.0
  weight = 1.0 / count
  if momentum is not None:
    weight = tf.maximum(weight, tf.cast(momentum, count.dtype))
  means = tuple(m + weight * (b - m) for m, b in zip(running.means,
                                                      batch.means))
  variances = tuple(v + weight * (b - v)
                    for v, b in zip(running.variances, batch.variances))
  return types.BatchNormStats(means, variances, count)


def batch_norm(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor,
               epsilon: float, stats=None, twice_differentiable: bool = True,
               bias: Optional[tf.Tensor] = None):
  """Batch norm over [S, H, W] of `x + bias` (the conv's output and bias).

  Two implementations of the same function:
  * `twice_differentiable=True`: plain ops, the variance taken around the
    batch mean *without* `stop_gradient` (unlike `tf.nn.moments`), so second
    derivatives are exact. Used wherever a gradient is differentiated again
    (second-order support passes).
  * otherwise (float32 or bfloat16 `x`): `tf.compat.v1.nn.fused_batch_norm`
    (FusedBatchNormV3), one op forward and one backward, with exact first
    derivatives. Used for first-order support passes, query passes and
    evaluation, where nothing differentiates the gradient again. The bias
    is never added to x here: normalising with the batch's own statistics
    removes it exactly (only the reported mean moves by it), and with given
    statistics it is folded into the offset, so a pass spends no
    elementwise op over x (forward or backward) on it. A bfloat16 x gives a
    bfloat16 output; the statistics are float32 (the op accumulates in
    float32), as are scale, offset and bias.

  Args:
    x: [S, H, W, F].
    scale, offset: [F].
    epsilon: variance epsilon.
    stats: optional (mean, variance) of `x + bias` to normalise with instead
      of the batch's.
    twice_differentiable: see above.
    bias: optional [F] added to x before normalising.

  Returns:
    (normalised x + bias, (batch mean, biased batch variance) of x + bias).
  """
  if not twice_differentiable and x.dtype in (tf.float32, tf.bfloat16):
    if stats is None:
      y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
          x, scale, offset, epsilon=epsilon, is_training=True)
      # The fused op reports the Bessel-corrected variance; normalisation
      # itself uses the biased one, which is what the running stats hold.
      n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), mean.dtype)
      if bias is not None:
        mean = mean + bias
      return y, (mean, unbiased * (n - 1.0) / n)
    if bias is not None:
      # (x + b - m) k + o = (x - m) k + (o + b k), k = scale / sqrt(v + eps):
      # into the offset, not the mean, since the fused op in inference mode
      # passes no gradient to its mean (the bias must get one).
      offset = offset + bias * scale * tf.math.rsqrt(stats[1] + epsilon)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, mean=stats[0], variance=stats[1],
        epsilon=epsilon, is_training=False)
    x = tf.cast(x, scale.dtype)
    mean = tf.reduce_mean(x, axis=[0, 1, 2])
    variance = tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2])
    if bias is not None:
      mean = mean + bias
    return y, (mean, variance)
  if bias is not None:
    x = tf.nn.bias_add(x, bias)
  mean = tf.reduce_mean(x, axis=[0, 1, 2])
  # No stop_gradient on the mean here: tf.nn.moments' variant makes
  # second-order meta-gradients wrong.
  variance = tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2])
  use_mean, use_var = (mean, variance) if stats is None else stats
  y = (x - use_mean) * (scale * tf.math.rsqrt(use_var + epsilon)) + offset
  return y, (mean, variance)


def first_block_patches(images: tf.Tensor) -> tf.Tensor:
  """The first conv's 3x3 'same' input patches: [S, H, W, C] -> [S, H, W, 9C].

  The first block's input is the episode's images, the same in every pass
  of an episode, so `features` can take its patches, made once, and run the
  first conv as one [S H W, 9C] x [9C, F] product (and its kernel gradient
  as the transposed product): with C = 1 the conv op and its
  kernel-gradient op are several times slower than the products at these
  shapes. The patches are exact copies of pixels (a convolution with a
  one-hot kernel), ordered as the conv kernel's (kh, kw, c).
  """
  channels = images.shape[-1]
  eye = tf.eye(9 * channels, dtype=images.dtype)
  return tf.nn.conv2d(images, tf.reshape(eye, [3, 3, channels, 9 * channels]),
                      strides=1, padding='SAME')


def features(params: dict, images: tf.Tensor,
             config: config_lib.LearnerConfig,
             bn_stats: Optional[types.BatchNormStats] = None,
             twice_differentiable: bool = True,
             patches: Optional[tf.Tensor] = None,
             conv_dtype=None):
  """Runs the conv blocks: the learner's penultimate features.

  Args:
    params: parameter nest (see module docstring); only the `conv*` and `bn*`
      entries are read, so a nest without `linear/*` will do.
    images: [S, H, W, C].
    config: the learner's shape.
    bn_stats: None to normalise with the batch's own statistics; else the
      running statistics to normalise with (see `apply`).
    twice_differentiable: see `apply`.
    patches: optional `first_block_patches(images)`, made once per episode:
      the first conv becomes a matrix product (the same function).
    conv_dtype: None (the images' dtype), or tf.bfloat16 for a float32
      first-order pass: the blocks' convolutions, and the activations
      between them, in bfloat16 (kernels rounded to bfloat16; the ops
      accumulate in float32); batch norm's statistics, scale and offset,
      the features, the head, the loss and the gradient stay float32.
      Ignored where `twice_differentiable`.

  Returns:
    (features [S, F * R * R], the flattened output of the last block; batch
    statistics `types.BatchNormStats` of this pass with count 1).
  """
  if conv_dtype is None or twice_differentiable:
    conv_dtype = images.dtype
  conv_dtype = tf.as_dtype(conv_dtype)
  x = images
  means, variances = [], []
  for block in range(1, config.num_blocks + 1):
    kernel = params[f'conv{block}/kernel']
    if block == 1 and patches is not None:
      kernel_2d = tf.reshape(kernel, [-1, kernel.shape[-1]])
      flat = tf.matmul(
          tf.cast(tf.reshape(patches, [-1, patches.shape[-1]]), conv_dtype),
          tf.cast(kernel_2d, conv_dtype))
      x = tf.reshape(flat, tf.concat([tf.shape(patches)[:3],
                                      [kernel.shape[-1]]], axis=0))
    else:
      # (The cast is a no-op past the first block: x is conv_dtype there.)
      x = tf.nn.conv2d(tf.cast(x, conv_dtype), tf.cast(kernel, conv_dtype),
                       strides=1, padding='SAME')
    stats = None
    if bn_stats is not None:
      stats = (bn_stats.means[block - 1], bn_stats.variances[block - 1])
    x, (mean, variance) = batch_norm(x, params[f'bn{block}/scale'],
                                     params[f'bn{block}/offset'],
                                     config.bn_epsilon, stats,
                                     twice_differentiable,
                                     bias=params[f'conv{block}/bias'])
    means.append(mean)
    variances.append(variance)
    # ReLU before the pool, not after (the same function, a quarter of the
    # elements): the CPU max-pool turns NaN into -FLT_MAX, which a ReLU after
    # it would hide as 0, and a NaN input must still give a NaN loss.
    x = tf.nn.max_pool2d(tf.nn.relu(x), ksize=2, strides=2, padding='VALID')
  x = tf.cast(tf.reshape(x, [tf.shape(x)[0], -1]), images.dtype)
  batch = types.BatchNormStats(tuple(means), tuple(variances),
                               tf.constant(1.0, x.dtype))
  return x, batch


def head(params: dict, feature_batch: tf.Tensor) -> tf.Tensor:
  """The linear layer: features [S, F * R * R] -> logits [S, N]."""
  return tf.matmul(feature_batch, params['linear/kernel']) + params[
      'linear/bias']


def prototype_head(feature_batch: tf.Tensor, labels: tf.Tensor,
                   num_ways: int):
  """The linear head that classifies as Prototypical Networks do.

  With c_k the mean feature of class k's examples, kernel[:, k] = 2 c_k and
  bias[k] = -|c_k|^2 give logits 2 x.c_k - |c_k|^2 = |x|^2 - |x - c_k|^2:
  the negative squared distance to each prototype up to a term shared by the
  classes, so the same softmax (Proto-MAML, Triantafillou et al. 2020).

  Args:
    feature_batch: [S, F]; labels: int [S] in [0, num_ways).
    num_ways: N (a class without examples gets c_k = 0).

  Returns:
    (kernel [F, N], bias [N]).
  """
  one_hot = tf.one_hot(labels, num_ways, dtype=feature_batch.dtype)
  counts = tf.reduce_sum(one_hot, axis=0)
  prototypes = tf.matmul(one_hot, feature_batch, transpose_a=True) / (
      tf.maximum(counts, 1.0)[:, tf.newaxis])
  return (2.0 * tf.transpose(prototypes),
          -tf.reduce_sum(tf.square(prototypes), axis=-1))


def apply(params: dict, images: tf.Tensor,
          config: config_lib.LearnerConfig,
          bn_stats: Optional[types.BatchNormStats] = None,
          twice_differentiable: bool = True,
          patches: Optional[tf.Tensor] = None,
          conv_dtype=None):
  """Runs the learner: `head(params, features(params, images, ...))`.

  Args:
    params: parameter nest (see module docstring).
    images: [S, H, W, C].
    config: the learner's shape.
    bn_stats: None to normalise with the batch's own statistics (support
      passes, meta-training queries, transductive evaluation); else the
      episode's running statistics (non-transductive evaluation).
    twice_differentiable: whether second derivatives through this pass must
      be exact (see `batch_norm`); False allows the fused batch norm.
    patches, conv_dtype: see `features`.

  Returns:
    (logits [S, N], batch statistics `types.BatchNormStats` of this pass with
    count 1).
  """
  feature_batch, batch = features(params, images, config, bn_stats,
                                  twice_differentiable, patches, conv_dtype)
  return head(params, feature_batch), batch


def loss_and_accuracy(logits: tf.Tensor, labels: tf.Tensor):
  """Mean softmax cross-entropy and accuracy. labels int [S] in [0, N).

  Written with `log_softmax` rather than the fused
  `sparse_softmax_cross_entropy_with_logits`, whose gradient blocks second
  derivatives (`prevent_gradient`).
  """
  one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
  loss = -tf.reduce_mean(
      tf.reduce_sum(one_hot * tf.nn.log_softmax(logits), axis=-1))
  predictions = tf.argmax(logits, axis=-1, output_type=labels.dtype)
  accuracy = tf.reduce_mean(tf.cast(tf.equal(predictions, labels),
                                    logits.dtype))
  return loss, accuracy
