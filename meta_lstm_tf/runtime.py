"""Process-wide TensorFlow runtime settings: the CPU thread pools, and
which precision the learner's convolutions take where `auto` is asked for.

A meta-train step is thousands of small ops (a conv net over a handful of
images, an LSTM over a [D, P] state): splitting each op over cores costs more
in synchronisation than it saves. One thread per op (`intra_op_threads=1`)
with independent ops running side by side (`inter_op_threads`, 0: one per
core) made the first-order 5-way 1-shot meta-train step 1.4x (meta-LSTM) to
1.6x (SGD) faster on a 2-core Xeon than TensorFlow's defaults, and
adapt-and-classify 1.7x faster (BUILD.md, "Speed"). TF Serving takes the same
settings as `--tensorflow_intra_op_parallelism` /
`--tensorflow_inter_op_parallelism`.

The pools are fixed once TensorFlow has run anything, so binaries call
`configure_threads` first thing after parsing flags.
"""

import tensorflow as tf

from meta_lstm_tf import config as config_lib

# The binaries' defaults (flags --intra_op_threads / --inter_op_threads).
DEFAULT_INTRA_OP_THREADS = 1
DEFAULT_INTER_OP_THREADS = 0


def configure_threads(intra_op_threads: int = DEFAULT_INTRA_OP_THREADS,
                      inter_op_threads: int = DEFAULT_INTER_OP_THREADS
                      ) -> dict:
  """Sets TensorFlow's intra- and inter-op thread pools (0: TF's choice).

  Returns:
    {'intra_op_threads': ..., 'inter_op_threads': ...} as set.

  Raises:
    ValueError: a negative count.
    RuntimeError: TensorFlow already runs with other pool sizes (it has
      executed ops before this call).
  """
  wanted = {'intra_op_threads': int(intra_op_threads),
            'inter_op_threads': int(inter_op_threads)}
  for name, value in wanted.items():
    if value < 0:
      raise ValueError(f'{name}={value}: must be >= 0 (0: TensorFlow '
                       'chooses)')
  threading = tf.config.threading
  setters = {
      'intra_op_threads': (threading.get_intra_op_parallelism_threads,
                           threading.set_intra_op_parallelism_threads),
      'inter_op_threads': (threading.get_inter_op_parallelism_threads,
                           threading.set_inter_op_parallelism_threads),
  }
  for name, (get, set_) in setters.items():
    if get() == wanted[name]:
      continue
    try:
      set_(wanted[name])
    except RuntimeError as e:
      raise RuntimeError(
          f'cannot set {name}={wanted[name]}: TensorFlow is already '
          f'initialised with {get()} ({e}); call configure_threads before '
          'running anything') from None
  return wanted


def thread_settings() -> dict:
  """The current pool sizes (0: TensorFlow's choice)."""
  threading = tf.config.threading
  return {'intra_op_threads': threading.get_intra_op_parallelism_threads(),
          'inter_op_threads': threading.get_inter_op_parallelism_threads()}


# /proc/cpuinfo flags of CPUs whose bfloat16 arithmetic oneDNN runs natively.
_BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_has_bfloat16(cpuinfo: str = '/proc/cpuinfo') -> bool:
  """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          return any(flag in line.split() for flag in _BF16_CPU_FLAGS)
  except OSError:
    pass
  return False


def resolve_conv_dtype(name: str) -> tf.DType:
  """The dtype of `InnerLoopConfig.conv_dtype` on this machine.

  `auto`: bfloat16 where the CPU computes it natively and no GPU is
  visible (a GPU run keeps float32 unless asked), else float32.

  Raises:
    ValueError: an unknown name.
  """
  if name not in config_lib.CONV_DTYPES:
    raise ValueError(f'conv_dtype={name!r}: must be one of '
                     f'{config_lib.CONV_DTYPES}')
  if name == 'auto':
    bf16 = cpu_has_bfloat16() and not tf.config.list_logical_devices('GPU')
    return tf.bfloat16 if bf16 else tf.float32
  return tf.as_dtype(name)
