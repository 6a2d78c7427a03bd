"""The configs' cross-field checks: each raises ValueError naming the field,
its value and the field it must agree with."""

import dataclasses

from absl.testing import parameterized
import tensorflow as tf

from meta_lstm_tf import config as config_lib


def _experiment(**parts) -> config_lib.ExperimentConfig:
  """A consistent 5-way 28 x 28 grayscale Omniglot experiment, with parts
  replaced (each a dict of field changes)."""
  base = config_lib.ExperimentConfig()
  return dataclasses.replace(base, **{
      name: dataclasses.replace(getattr(base, name), **changes)
      for name, changes in parts.items()})


_PHOTOS = dict(dataset='image_folder', data_root='/photos', channels=3,
               image_size=28)


class ExperimentConfigTest(tf.test.TestCase, parameterized.TestCase):

  def test_consistent_configs_pass(self):
    for config in (_experiment(),
                   _experiment(data=_PHOTOS, learner=dict(channels=3)),
                   _experiment(episode=dict(num_ways=20),
                               learner=dict(num_ways=20))):
      self.assertIs(config.validate(), config)

  @parameterized.named_parameters(
      # The learner's shape is derived from the episode and data settings:
      # another one given explicitly is refused, naming the field.
      ('num_ways', dict(learner=dict(num_ways=20)),
       r'^learner\.num_ways=20: is derived from the episode and data '
       r'settings \(5\)'),
      ('image_size', dict(learner=dict(image_size=32)),
       r'^learner\.image_size=32: is derived from the episode and data '
       r'settings \(28\)'),
      ('channels', dict(learner=dict(channels=3)),
       r'^learner\.channels=3: is derived'),
      ('within_alphabet', dict(data=_PHOTOS, learner=dict(channels=3),
                               episode=dict(episode_classes='within_alphabet')),
       r"^episode_classes='within_alphabet': within_alphabet needs "
       r'dataset=omniglot'),
      ('distinct_drawers', dict(data=_PHOTOS, learner=dict(channels=3),
                                episode=dict(distinct_drawers=True)),
       r'^distinct_drawers=True: needs dataset=omniglot'),
  )
  def test_cross_field_check_names_the_field(self, parts, message):
    with self.assertRaisesRegex(ValueError, message):
      _experiment(**parts).validate()

  def test_episode_and_data_shape_the_learner(self):
    config = _experiment(episode=dict(num_ways=3), data=dict(image_size=32))
    self.assertEqual((config.learner.num_ways, config.learner.image_size),
                     (3, 32))
    self.assertIs(config.validate(), config)

  def test_omniglot_protocols_are_allowed_on_omniglot(self):
    config = _experiment(episode=dict(episode_classes='within_alphabet',
                                      distinct_drawers=True))
    self.assertIs(config.validate(), config)


class DataConfigTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('omniglot_is_grayscale', dict(channels=3),
       r'^channels=3: must be 1 for dataset=omniglot'),
      ('photos_need_a_root', dict(dataset='mini_imagenet', channels=3),
       r'^data_root=None: is required when dataset=mini_imagenet'),
      ('rotations_only_omniglot', dict(_PHOTOS, rotations=True),
       r'^rotations=True: only applies to dataset=omniglot'),
      ('vinyals_needs_split_dir', dict(split='vinyals'),
       r'^split_dir=None: is required when split=vinyals'),
  )
  def test_cross_field_check_names_the_field(self, changes, message):
    with self.assertRaisesRegex(ValueError, message):
      config_lib.DataConfig(**changes).validate()
    # Each passes once the other field agrees.
    fixed = {'channels': dict(channels=1),
             'data_root': dict(data_root='/photos'),
             'rotations': dict(rotations=False),
             'split_dir': dict(split_dir='/splits')}[
                 message[1:].split('=')[0]]
    config_lib.DataConfig(**dict(changes, **fixed)).validate()


if __name__ == '__main__':
  tf.test.main()
