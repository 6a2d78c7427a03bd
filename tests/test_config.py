"""The one declaration per setting: flags, config.json, results.json and
'changes the numbers' all follow `config.setting(...)`."""

import dataclasses

from absl import flags
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.bin import cli
from meta_lstm_tf.training import workdir


def _parse(argv):
  flag_values = flags.FlagValues()
  cli.define_flags(flag_values)
  flag_values(['prog', '--workdir=/tmp/x'] + argv)
  return flag_values


def _other_value(field):
  """A valid value of the field other than its default."""
  if field.metadata['choices']:
    return [c for c in field.metadata['choices'] if c != field.default][0]
  if isinstance(field.default, bool):
    return not field.default
  if isinstance(field.default, int):
    return field.default + 2
  if isinstance(field.default, float):
    return field.default / 2 if field.default else 0.5
  return None


# Flag values that validate only with others (checked elsewhere).
_NEEDS_OTHERS = {'dataset', 'data_root', 'channels', 'split', 'split_dir',
                 'omniglot_dir', 'data_dir', 'tpu_address', 'minimal_subset',
                 'final_learning_rate', 'forget_gate_init', 'image_size',
                 'num_blocks', 'init_pretrain_seconds', 'bn_momentum',
                 'max_train_seconds', 'episode_classes', 'distinct_drawers',
                 'strategy', 'rotations', 'rotated_alphabets', 'augment',
                 'augment_shear',
                 'augment_rotation', 'augment_zoom', 'augment_shift',
                 'inner_lr'}


class DeclarationTest(tf.test.TestCase):

  def test_every_setting_with_help_is_a_flag_of_its_name_default_and_help(self):
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    declared = cli.flag_settings()
    self.assertGreater(len(declared), 40)
    for _, field in declared:
      flag = flag_values[field.name]
      self.assertEndsWith(flag.help, field.metadata['help'], field.name)
      self.assertEqual(flag.default,
                       field.metadata.get('flag_default', field.default),
                       field.name)
    own = {'workdir', 'allow_config_change', 'intra_op_threads',
           'inter_op_threads'}
    self.assertCountEqual(set(flag_values) - own,
                          [field.name for _, field in declared])

  def test_each_flag_sets_its_own_field_and_nothing_else(self):
    default = cli.config_from_flags(_parse([])).to_dict()
    checked = 0
    for part, field in cli.flag_settings():
      value = _other_value(field)
      if field.name in _NEEDS_OTHERS or value is None:
        continue
      text = (f'--{field.name}' if value is True else
              f'--no{field.name}' if value is False else
              f'--{field.name}={value}')
      got = cli.config_from_flags(_parse([text])).to_dict()
      want = {p: dict(fields) for p, fields in default.items()}
      want[part][field.name] = value
      self.assertEqual(got, want, text)
      checked += 1
    self.assertGreater(checked, 25)

  def test_roles_decide_what_changes_the_numbers(self):
    config = config_lib.ExperimentConfig()
    relevant = workdir.relevant_config(config.to_dict())
    self.assertNotIn('runtime', relevant)
    for field in ('omniglot_dir', 'data_dir', 'data_root'):
      self.assertNotIn(field, relevant['data'])
    self.assertIn('seed', relevant['train'])
    self.assertIn('max_steps', relevant['train'])
    self.assertEqual(workdir.BUDGET_FIELDS,
                     ('train.max_steps', 'train.max_train_seconds'))
    moved = dataclasses.replace(
        config, runtime=dataclasses.replace(config.runtime, quiet=True,
                                            strategy='mirrored'),
        data=dataclasses.replace(config.data, omniglot_dir='/elsewhere'))
    self.assertEqual(workdir.config_changes(config.to_dict(),
                                            moved.to_dict()), [])
    seeded = dataclasses.replace(
        config, train=dataclasses.replace(config.train, seed=9))
    self.assertEqual(workdir.config_changes(config.to_dict(),
                                            seeded.to_dict()),
                     [('train.seed', 0, 9)])

  def test_results_record_what_is_declared_recorded(self):
    config = config_lib.ExperimentConfig()
    recorded = config_lib.recorded_settings(config)
    want = {field.name for _, field in config_lib.declared_settings()
            if field.metadata['record']}
    self.assertEqual(set(recorded), want)
    self.assertTrue({'num_ways', 'update_rule', 'seed', 'strategy',
                     'augment'} <= want)
    self.assertNotIn('quiet', recorded)

  def test_learner_shape_is_derived_not_stored(self):
    config = config_lib.ExperimentConfig(
        data=config_lib.DataConfig(image_size=16),
        episode=config_lib.EpisodeConfig(num_ways=20),
        learner=config_lib.LearnerConfig(num_filters=64))
    self.assertEqual((config.learner.num_ways, config.learner.image_size,
                      config.learner.channels), (20, 16, 1))
    self.assertEqual(config.learner.num_filters, 64)
    self.assertEqual(set(config.to_dict()['learner']),
                     {'num_filters', 'num_blocks', 'bn_epsilon'})
    again = dataclasses.replace(config, episode=config_lib.EpisodeConfig(3))
    self.assertEqual(again.learner.num_ways, 3)
    # A shape given explicitly must agree with the derived one.
    with self.assertRaisesRegex(ValueError, r'learner\.num_ways=3: is derived'):
      config_lib.ExperimentConfig(learner=config_lib.LearnerConfig(num_ways=3))
    with self.assertRaisesRegex(ValueError, r'learner\.image_size=16'):
      config_lib.ExperimentConfig(
          learner=config_lib.LearnerConfig(image_size=16))
    # A config derived before takes a new episode shape as it comes.
    twenty = dataclasses.replace(again, episode=config_lib.EpisodeConfig(20))
    self.assertEqual(dataclasses.replace(
        twenty, episode=config_lib.EpisodeConfig(5)).learner.num_ways, 5)

  def test_config_json_of_earlier_versions_reads_and_round_trips(self):
    config = config_lib.ExperimentConfig(
        runtime=config_lib.RuntimeConfig(quiet=True, log_every=7))
    old = config.to_dict()
    old['train'].update(old.pop('runtime'))  # Runtime settings were train's.
    old['learner'].update(num_ways=5, image_size=28, channels=1)
    self.assertEqual(config_lib.ExperimentConfig.from_dict(old), config)
    self.assertEqual(workdir.config_changes(old, config.to_dict()), [])
    self.assertEqual(config_lib.ExperimentConfig.from_dict(config.to_dict()),
                     config)
    with self.assertRaises(TypeError):
      config_lib.ExperimentConfig.from_dict({'train': {'no_such_field': 1}})

  def test_a_setting_needs_a_known_role(self):
    with self.assertRaisesRegex(ValueError, 'role='):
      config_lib.setting(1, 'help', role='bookkeeping')


if __name__ == '__main__':
  tf.test.main()
