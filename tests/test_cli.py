"""Flags -> config: every config file parses, bad values name the flag."""

import glob
import os
import subprocess
import sys
import tempfile

from absl import flags
from absl.testing import parameterized
import tensorflow as tf

from meta_lstm_tf.bin import cli
from meta_lstm_tf import config as config_lib
from meta_lstm_tf.training import workdir
from meta_lstm_tf.bin import results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.flags')))


def parse(argv, define_flags=cli.define_flags):
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  flag_values(['prog'] + argv)
  return flag_values


class CliTest(tf.test.TestCase, parameterized.TestCase):

  def test_all_configs_are_listed(self):
    names = {os.path.basename(p) for p in CONFIGS}
    self.assertTrue({'base.flags', 'mini.flags', 'omniglot_5w1s.flags',
                     'omniglot_5w5s.flags', 'omniglot_20w1s.flags',
                     'omniglot_20w5s.flags'} <= names)

  @parameterized.parameters(*CONFIGS)
  def test_config_file_parses_and_validates(self, path):
    cwd = os.getcwd()
    os.chdir(REPO)  # Nested --flagfile paths are relative to the repo root.
    # results_*.flags are for the grid binary: the main job's flags and more.
    define_flags = (results.define_flags
                    if os.path.basename(path).startswith('results_')
                    else cli.define_flags)
    try:
      flag_values = parse([f'--flagfile={path}'], define_flags)
    finally:
      os.chdir(cwd)
    config = cli.config_from_flags(flag_values)
    self.assertIsInstance(config, config_lib.ExperimentConfig)
    if 'omniglot_' in path:
      ways, shots = os.path.basename(path)[len('omniglot_'):-6].split('w')
      self.assertEqual(config.episode.num_ways, int(ways))
      self.assertEqual(config.episode.num_shots, int(shots[:-1]))
      self.assertEqual(config.inner_loop.inner_steps,
                       12 if shots == '1s' else 8)
    if 'mini_imagenet_' in path and 'results_' not in path:
      shots = os.path.basename(path)[len('mini_imagenet_5w'):-len('s.flags')]
      self.assertEqual(config.episode.num_shots, int(shots))
      self.assertEqual(
          (config.data.dataset, config.data.image_size,
           config.learner.channels, config.inner_loop.inner_steps,
           config.meta_learner.gate_init, config.meta_learner.hidden_size),
          ('mini_imagenet', 84, 3, 12 if shots == '1' else 8, 'paper', 20))

  @parameterized.parameters(
      ('--num_ways=1', 'num_ways=1'),
      ('--num_shots=0', 'num_shots=0'),
      ('--inner_steps=-3', 'inner_steps=-3'),
      ('--learning_rate=0', 'learning_rate=0.0'),
      ('--meta_batch_size=0', 'meta_batch_size=0'),
      ('--image_size=8', 'num_blocks=4'),
      ('--clip_norm=-1', 'clip_norm=-1.0'),
      ('--forget_gate_init=1', 'forget_gate_init=1.0'),
      ('--inner_lr=-1', 'inner_lr=-1.0'),
      ('--init_pretrain_steps=0', 'init_pretrain_steps=0'),
      ('--init_pretrain_seconds=-1', 'init_pretrain_seconds=-1.0'),
  )
  def test_bad_value_names_the_flag(self, arg, expected):
    flag_values = parse(['--workdir=/tmp/x', arg])
    with self.assertRaisesRegex(ValueError, expected):
      cli.config_from_flags(flag_values)

  def test_inner_lr_is_a_gate_with_gate_init_inner_lr(self):
    flag_values = parse(['--workdir=/tmp/x', '--gate_init=inner_lr',
                         '--inner_lr=1.5'])
    with self.assertRaisesRegex(ValueError, 'inner_lr=1.5.*sigmoid'):
      cli.config_from_flags(flag_values)

  def test_conv_dtype_flag_reaches_the_inner_loop(self):
    self.assertEqual(
        cli.config_from_flags(parse(['--workdir=/tmp/x'])).inner_loop
        .conv_dtype, 'float32')  # The library default: older runs resume.
    for value in ('float32', 'bfloat16', 'auto'):
      config = cli.config_from_flags(parse(['--workdir=/tmp/x',
                                            f'--conv_dtype={value}']))
      self.assertEqual(config.inner_loop.conv_dtype, value)
    with self.assertRaisesRegex(flags.IllegalFlagValueError, 'conv_dtype'):
      parse(['--conv_dtype=float16'])
    with self.assertRaisesRegex(ValueError, "conv_dtype='float16'"):
      config_lib.InnerLoopConfig(conv_dtype='float16').validate()
    # A config.json written before the field existed loads as float32.
    old = config.to_dict()
    del old['inner_loop']['conv_dtype']
    self.assertEqual(
        workdir.config_from_dict(old).inner_loop.conv_dtype, 'float32')

  def test_bn_momentum_and_train_query_stats_flags_reach_the_inner_loop(self):
    def inner_loop(*argv):
      return cli.config_from_flags(parse(['--workdir=/tmp/x', *argv])
                                   ).inner_loop

    self.assertEqual(inner_loop().bn_momentum, 1.0)  # The last pass.
    # 0 means the mean over passes, which the config spells None.
    self.assertIsNone(inner_loop('--bn_momentum=0').bn_momentum)
    self.assertEqual(inner_loop('--bn_momentum=0.5').bn_momentum, 0.5)
    for bad in ('-0.5', '1.5'):
      with self.assertRaisesRegex(ValueError, f'bn_momentum={float(bad)}'):
        inner_loop(f'--bn_momentum={bad}')
    self.assertEqual(inner_loop().train_query_stats, 'batch')
    self.assertEqual(
        inner_loop('--train_query_stats=support').train_query_stats,
        'support')
    with self.assertRaisesRegex(flags.IllegalFlagValueError,
                                'train_query_stats'):
      parse(['--train_query_stats=query'])

  def test_unknown_split_is_rejected_by_the_parser(self):
    with self.assertRaisesRegex(flags.IllegalFlagValueError, 'split'):
      parse(['--split=bogus'])

  def test_flags_as_text_round_trips(self):
    flag_values = parse(['--workdir=/tmp/x', '--num_ways=20', '--second_order'])
    text = cli.flags_as_text(flag_values)
    path = os.path.join(self.get_temp_dir(), 'f.flags')
    with open(path, 'w') as f:
      f.write(text)
    again = cli.config_from_flags(parse([f'--flagfile={path}']))
    self.assertEqual(again, cli.config_from_flags(flag_values))

  def test_configs_resolve_from_another_directory_nested_lines_included(
      self):
    elsewhere = tempfile.mkdtemp(dir=self.get_temp_dir())
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
      # absl alone reads flagfiles relative to the working directory.
      with self.assertRaises(flags.CantOpenFlagFileError):
        parse(['--flagfile=configs/mini.flags'])
      flag_values = parse(cli.expand_flagfiles(
          ['prog', '--flagfile=configs/mini.flags', '--seed=7']))
    finally:
      os.chdir(cwd)
    self.assertEqual(cli.configs_dir(), os.path.join(REPO, 'configs'))
    # From mini.flags, from the base.flags it nests, and the command line.
    self.assertEqual((flag_values.workdir, flag_values.max_train_seconds),
                     ('runs/mini', 450.0))
    self.assertEqual((flag_values.gate_bias, flag_values.gate_bias_scale,
                      flag_values.split), ('per_tensor', 30.0, 'lake'))
    self.assertEqual(flag_values.seed, 7)
    self.assertEqual(cli.config_from_flags(flag_values),
                     cli.config_from_flags(self._parse_in_repo(
                         ['--flagfile=configs/mini.flags', '--seed=7'])))

  def _parse_in_repo(self, argv):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
      return parse(argv)
    finally:
      os.chdir(cwd)

  def test_a_configs_folder_in_the_working_directory_wins(self):
    elsewhere = tempfile.mkdtemp(dir=self.get_temp_dir())
    # Its own mini.flags nests a base.flags it does not have: the installed
    # one is read for that line.
    os.makedirs(os.path.join(elsewhere, 'configs'))
    with open(os.path.join(elsewhere, 'configs', 'mini.flags'), 'w') as f:
      f.write('# mine\n--flagfile=configs/base.flags\n--num_ways=7\n\n'
              '// another comment\n')
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
      flag_values = parse(cli.expand_flagfiles(
          ['prog', '--flagfile', 'configs/mini.flags'])[1:])
    finally:
      os.chdir(cwd)
    self.assertEqual((flag_values.num_ways, flag_values.gate_bias_scale),
                     (7, 30.0))
    self.assertIsNone(flag_values.workdir)  # Not the installed mini.flags.
    # What cannot be read is left for absl to report, naming it.
    self.assertEqual(cli.expand_flagfiles(['p', '--flagfile=configs/nope']),
                     ['p', '--flagfile=configs/nope'])
    self.assertEqual(cli.expand_flagfiles(['p', '--', '--flagfile=x']),
                     ['p', '--', '--flagfile=x'])

  def test_setting_flagfiles_resolve_from_another_directory(self):
    flag_values = parse(['--workdir=/tmp/x', '--setting_flagfiles=5w1s:'
                         'configs/vinyals_5w1s.flags'], results.define_flags)
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp(dir=self.get_temp_dir()))
    try:
      by_setting = results.setting_flags_from_flags(
          ['prog', '--seed=5'], flag_values)
    finally:
      os.chdir(cwd)
    own = by_setting['5w1s']
    self.assertEqual((own.split, own.num_ways, own.num_shots, own.seed),
                     ('vinyals', 5, 1, 5))
    self.assertEqual(own.gate_bias_scale, 30.0)  # Nested base.flags.

  def test_main_reads_the_installed_config_from_another_directory(self):
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, '-m', 'meta_lstm_tf.main',
         '--flagfile=configs/mini.flags', '--num_ways=1'],
        capture_output=True, text=True, cwd=tempfile.mkdtemp(dir=self.get_temp_dir()),
        env=env, timeout=120, check=False)
    self.assertNotEqual(result.returncode, 0)
    self.assertNotIn('Unable to open flagfile', result.stderr)
    self.assertIn('num_ways=1', result.stderr)

  def test_main_exits_non_zero_naming_the_flag(self):
    result = subprocess.run(
        [sys.executable, '-m', 'meta_lstm_tf.main', '--workdir=/tmp/unused',
         '--num_ways=1'], capture_output=True, text=True, cwd=REPO,
        timeout=120, check=False)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn('num_ways=1', result.stderr)

  def test_evaluate_takes_the_thread_flags(self):
    # A retest can be pinned to one core beside a running job, as `main`.
    workdir = tempfile.mkdtemp(dir=self.get_temp_dir())
    result = subprocess.run(
        [sys.executable, '-m', 'meta_lstm_tf.bin.evaluate',
         f'--workdir={workdir}', '--intra_op_threads=1',
         '--inter_op_threads=1'], capture_output=True, text=True, cwd=REPO,
        timeout=120, check=False)
    self.assertNotEqual(result.returncode, 0)
    self.assertNotIn('Unknown command line flag', result.stderr)
    self.assertIn('config.json not found', result.stderr)
