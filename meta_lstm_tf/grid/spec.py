"""The grids: named N-way K-shot settings, update rules and baselines, and
the cells (one run per rule and setting) they expand to.

Shape glossary: N ways, K shots, T inner steps.
"""

import dataclasses
import os
import re
from typing import List, Mapping, NamedTuple, Optional, Sequence, Tuple


from meta_lstm_tf import config as config_lib

# Named grids: the (N ways, K shots) settings they cover.
GRIDS = {
    'mini': ((5, 1), (5, 5)),
    'paper': ((5, 1), (5, 5), (20, 1), (20, 5)),
    # Ravi & Larochelle's Table 1 on mini-ImageNet (--dataset=mini_imagenet).
    'mini_imagenet': ((5, 1), (5, 5)),
}


# Grids that only make sense on one data set.
GRID_DATASETS = {'mini_imagenet': 'mini_imagenet'}


RULES = config_lib.UPDATE_RULES


BASELINES = ('finetune', 'nearest_neighbour')


RESULTS_MD = 'results.md'


RESULTS_JSON = 'results.json'


PLOT_FILE = 'valid_curves.png'


PRETRAIN_DIR = 'pretrain'


class Setting(NamedTuple):
  """One column of the table: N-way K-shot."""
  num_ways: int
  num_shots: int

  @property
  def name(self) -> str:
    return f'{self.num_ways}w{self.num_shots}s'

  @property
  def title(self) -> str:
    return f'{self.num_ways}-way {self.num_shots}-shot'


@dataclasses.dataclass(frozen=True)
class GridSpec:
  """What a grid runs.

  Attributes:
    name: the grid's name (a key of `GRIDS`, or any label).
    settings: the (N, K) settings, in table order.
    rules: update rules (`config.UPDATE_RULES`) meta-trained per setting.
    baselines: baselines (`BASELINES`) evaluated per setting.
    inner_steps_by_shots: ((K, T), ...): T inner steps for K-shot cells;
      shots not listed keep the base config's `inner_steps`.
    cells: only these update-rule cells (`cell_name`s, e.g. 'sgd_5w1s');
      empty: every rule at every setting.
  """
  name: str
  settings: Tuple[Setting, ...]
  rules: Tuple[str, ...] = RULES
  baselines: Tuple[str, ...] = BASELINES
  inner_steps_by_shots: Tuple[Tuple[int, int], ...] = ()
  cells: Tuple[str, ...] = ()

  def validate(self) -> 'GridSpec':
    if not self.settings:
      raise ValueError(f'settings={self.settings!r}: the grid is empty')
    for setting in self.settings:
      if setting.num_ways < 2 or setting.num_shots < 1:
        raise ValueError(f'settings: {setting.name} is not a valid setting')
    for rule in self.rules:
      if rule not in RULES:
        raise ValueError(f'rules: {rule!r} must be one of {RULES}')
    for baseline in self.baselines:
      if baseline not in BASELINES:
        raise ValueError(f'baselines: {baseline!r} must be one of '
                         f'{BASELINES}')
    if not self.rules and not self.baselines:
      raise ValueError('rules and baselines are both empty: nothing to run')
    for shots, steps in self.inner_steps_by_shots:
      if shots < 1 or steps < 1:
        raise ValueError(f'inner_steps_by_shots: {shots}:{steps} must be '
                         'positive')
    product = [cell_name(r, s) for s in self.settings for r in self.rules]
    for name in self.cells:
      if name not in product:
        raise ValueError(f'cells: {name!r} is not a rule and setting of the '
                         f'grid ({", ".join(product)})')
    return self

  def runs(self, rule: str, setting: Setting) -> bool:
    """Whether the grid meta-trains `rule` at `setting`."""
    return (rule in self.rules and setting in self.settings and
            (not self.cells or cell_name(rule, setting) in self.cells))

  def inner_steps(self, num_shots: int, default: int) -> int:
    return dict(self.inner_steps_by_shots).get(num_shots, default)


def parse_setting(text: str) -> Setting:
  """'5w1s' -> Setting(5, 1)."""
  match = re.fullmatch(r'(\d+)w(\d+)s', text.strip())
  if not match:
    raise ValueError(f'setting {text!r}: expected NwKs, e.g. 5w1s')
  return Setting(int(match.group(1)), int(match.group(2)))


def make_grid(name: str, rules: Optional[Sequence[str]] = None,
              baselines: Optional[Sequence[str]] = None,
              settings: Optional[Sequence[str]] = None,
              inner_steps_by_shots: Sequence[Tuple[int, int]] = (),
              cells: Sequence[str] = ()) -> GridSpec:
  """The named grid, optionally restricted.

  Args:
    name: a key of `GRIDS`.
    rules: update rules to run (None: all of `RULES`).
    baselines: baselines to run (None: all of `BASELINES`).
    settings: settings as 'NwKs' (None: all of the grid's); each must be in
      the grid.
    inner_steps_by_shots, cells: see `GridSpec`.

  Returns:
    The validated `GridSpec`.

  Raises:
    ValueError: unknown grid, rule, baseline or setting.
  """
  if name not in GRIDS:
    raise ValueError(f'grid={name!r}: must be one of {tuple(GRIDS)}')
  grid_settings = tuple(Setting(*s) for s in GRIDS[name])
  if settings is not None:
    chosen = [parse_setting(s) for s in settings]
    for setting in chosen:
      if setting not in grid_settings:
        raise ValueError(
            f'settings: {setting.name} is not in grid {name!r} '
            f'({", ".join(s.name for s in grid_settings)})')
    grid_settings = tuple(s for s in grid_settings if s in chosen)
  return GridSpec(
      name=name, settings=grid_settings,
      rules=RULES if rules is None else tuple(rules),
      baselines=BASELINES if baselines is None else tuple(baselines),
      inner_steps_by_shots=tuple(inner_steps_by_shots),
      cells=tuple(cells)).validate()


class Cell(NamedTuple):
  """One meta-trained run of the grid."""
  rule: str
  setting: Setting
  config: config_lib.ExperimentConfig
  workdir: str


def cell_config(base: config_lib.ExperimentConfig, rule: str,
                setting: Setting, inner_steps: Optional[int] = None
                ) -> config_lib.ExperimentConfig:
  """`base` with the update rule, N, K (and optionally T) replaced."""
  config = dataclasses.replace(
      base,
      episode=dataclasses.replace(base.episode, num_ways=setting.num_ways,
                                  num_shots=setting.num_shots),
      learner=dataclasses.replace(base.learner, num_ways=setting.num_ways),
      meta_learner=dataclasses.replace(base.meta_learner, update_rule=rule))
  if inner_steps is not None:
    config = dataclasses.replace(config, inner_loop=dataclasses.replace(
        config.inner_loop, inner_steps=inner_steps))
  return config.validate()


def cell_name(rule: str, setting: Setting) -> str:
  return f'{rule}_{setting.name}'


def setting_base(base: config_lib.ExperimentConfig, setting: Setting,
                 setting_bases: Optional[Mapping[str, config_lib.ExperimentConfig]]
                 = None) -> config_lib.ExperimentConfig:
  """The config a setting's cells start from: its own, else the grid's."""
  return (setting_bases or {}).get(setting.name, base)


def expand_grid(spec: GridSpec, base: config_lib.ExperimentConfig,
                root: str,
                setting_bases: Optional[Mapping[str,
                                                config_lib.ExperimentConfig]]
                = None) -> List[Cell]:
  """The meta-trained cells, setting by setting, rules in `spec` order.

  `setting_bases` ({setting name: config}) gives a setting its own base
  config (its budget, queries, learner, ...); the others start from `base`.
  """
  cells = []
  for setting in spec.settings:
    own = setting_base(base, setting, setting_bases)
    for rule in spec.rules:
      if spec.runs(rule, setting):
        cells.append(Cell(
            rule, setting,
            cell_config(own, rule, setting,
                        spec.inner_steps(setting.num_shots,
                                         own.inner_loop.inner_steps)),
            os.path.join(root, cell_name(rule, setting))))
  return cells


def cell_flags_text(flags_text: Optional[str], cell: Cell) -> Optional[str]:
  """The grid's flags plus the cell's overrides (later flags win), so
  `main --flagfile=CELL/flags.txt` reruns the cell on its own."""
  if flags_text is None:
    return None
  overrides = (f'--workdir={cell.workdir}',
               f'--update_rule={cell.rule}',
               f'--num_ways={cell.setting.num_ways}',
               f'--num_shots={cell.setting.num_shots}',
               f'--inner_steps={cell.config.inner_loop.inner_steps}')
  return flags_text.rstrip('\n') + '\n' + '\n'.join(overrides) + '\n'
