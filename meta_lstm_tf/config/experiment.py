"""`ExperimentConfig`: everything one run needs, its config.json form and
the settings derived from the declarations."""

import dataclasses
from typing import Optional

from meta_lstm_tf.config import data as data_lib
from meta_lstm_tf.config import model as model_lib
from meta_lstm_tf.config import run
from meta_lstm_tf.config import settings


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one run needs.

  The learner's shape is derived, not stored: `learner.num_ways` is
  `episode.num_ways`, `learner.image_size` and `learner.channels` are the
  data's. A `learner` given with another shape than its default is refused
  (ValueError) unless it is the derived one.
  """
  data: data_lib.DataConfig = data_lib.DataConfig()
  episode: data_lib.EpisodeConfig = data_lib.EpisodeConfig()
  learner: model_lib.LearnerConfig = model_lib.LearnerConfig()
  meta_learner: model_lib.MetaLearnerConfig = model_lib.MetaLearnerConfig()
  inner_loop: model_lib.InnerLoopConfig = model_lib.InnerLoopConfig()
  train: run.TrainConfig = run.TrainConfig()
  runtime: run.RuntimeConfig = run.RuntimeConfig()

  def __post_init__(self):
    shape = {'num_ways': self.episode.num_ways,
             'image_size': self.data.image_size,
             'channels': self.data.channels}
    if not getattr(self.learner, '_shape_derived', False):
      # A shape given explicitly (not the default) must be the derived one;
      # a learner derived before (`dataclasses.replace(config, ...)`) is
      # simply derived again.
      defaults = model_lib.LearnerConfig()
      for field, value in shape.items():
        given = getattr(self.learner, field)
        settings.check(given in (value, getattr(defaults, field)),
                       f'learner.{field}', given,
                       f'is derived from the episode and data settings '
                       f'({value}); leave it unset')
    learner = dataclasses.replace(self.learner, **shape)
    object.__setattr__(learner, '_shape_derived', True)
    object.__setattr__(self, 'learner', learner)

  def validate(self) -> 'ExperimentConfig':
    for part in (self.data, self.episode, self.learner, self.meta_learner,
                 self.inner_loop, self.train, self.runtime):
      part.validate()
    if self.data.dataset != 'omniglot':
      for field, value in (
          ('episode_classes', self.episode.episode_classes),
          ('train_episode_classes', self.episode.train_episode_classes)):
        settings.check(value in ('same', 'any'), field, value,
                       f'{value} needs dataset=omniglot (alphabets)')
      settings.check(not self.episode.distinct_drawers, 'distinct_drawers',
             self.episode.distinct_drawers,
             'needs dataset=omniglot (drawers)')
    return self

  def to_dict(self) -> dict:
    """{part: {field: value}}, derived fields left out (config.json)."""
    return {part.name: {f.name: _plain(getattr(value, f.name))
                        for f in dataclasses.fields(value)
                        if not f.metadata.get('derived')}
            for part in dataclasses.fields(self)
            for value in (getattr(self, part.name),)}

  @classmethod
  def from_dict(cls, value: dict) -> 'ExperimentConfig':
    """Inverse of `to_dict()`; also reads the config.json of earlier
    versions (`migrate`). Raises TypeError on an unknown field."""
    value = migrate(value)
    parts = {}
    for part in dataclasses.fields(cls):
      kwargs = {key: tuple(item) if isinstance(item, list) else item
                for key, item in value.get(part.name, {}).items()}
      parts[part.name] = part.type(**kwargs)
    return cls(**parts)


def _plain(value):
  return list(value) if isinstance(value, tuple) else value


# Settings that moved from one part to another, for reading config.json
# files written before the move: {old part: {field: new part}}.
_MOVED = {'train': {f.name: 'runtime'
                    for f in dataclasses.fields(run.RuntimeConfig)}}


def migrate(value: dict) -> dict:
  """An earlier version's `to_dict()` in today's layout: settings that
  moved (`_MOVED`: the runtime settings were in `train`) go to their part,
  and the derived learner shape (stored until it was derived) is dropped.
  Fields absent stay absent."""
  value = {part: dict(fields) for part, fields in value.items()}
  for old_part, moves in _MOVED.items():
    for field, new_part in moves.items():
      if field in value.get(old_part, {}):
        value.setdefault(new_part, {})[field] = value[old_part].pop(field)
  derived_fields = [f.name for f in dataclasses.fields(model_lib.LearnerConfig)
                    if f.metadata.get('derived')]
  for field in derived_fields:
    value.get('learner', {}).pop(field, None)
  return value


def declared_settings(role: Optional[str] = None):
  """[(part name, dataclasses.Field)] of every declared (non-derived)
  setting of an `ExperimentConfig`, optionally only those of one role."""
  found = []
  for part in dataclasses.fields(ExperimentConfig):
    for field in dataclasses.fields(part.type):
      if field.metadata.get('derived') or 'role' not in field.metadata:
        continue
      if role is None or field.metadata['role'] == role:
        found.append((part.name, field))
  return found


def recorded_settings(config: ExperimentConfig) -> dict:
  """The settings results.json records ({field: value}, flat): those
  declared with `record=True`."""
  return {field.name: _plain(getattr(getattr(config, part), field.name))
          for part, field in declared_settings()
          if field.metadata['record']}
