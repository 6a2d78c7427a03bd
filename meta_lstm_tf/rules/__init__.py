"""Inner-loop update rules: the interface, each rule, and the one registry.

    base.py            `UpdateRule`, the interface `inner_loop.adapt` talks to
    meta_lstm_cell.py  the meta-LSTM's pure step functions (its equations)
    meta_lstm.py       `MetaLSTMRule`, the Keras layer owning its variables
                       (`MetaLSTMLayer`: its first name, kept as an alias
                       and as its registered Keras name)
    sgd.py             `SGDRule` (MAML's inner loop) and the shared
                       gradient-descent step
    meta_sgd.py        `MetaSGDRule` (learned per-coordinate rates)

`RULES` maps each name of `config.UPDATE_RULES` (the names a config and the
`--update_rule` flag accept) to its class; `make_rule` builds the rule of an
experiment config.
"""

from meta_lstm_tf import config as config_lib
from meta_lstm_tf.rules.base import UpdateRule
from meta_lstm_tf.rules.meta_lstm import MetaLSTMLayer
from meta_lstm_tf.rules.meta_lstm import MetaLSTMRule
from meta_lstm_tf.rules.meta_sgd import MetaSGDRule
from meta_lstm_tf.rules.sgd import SGDRule

RULES = {
    'meta_lstm': MetaLSTMRule,
    'sgd': SGDRule,
    'meta_sgd': MetaSGDRule,
}
if tuple(RULES) != config_lib.UPDATE_RULES:
  raise ImportError(f'rules.RULES {tuple(RULES)} must list exactly '
                    f'config.UPDATE_RULES {config_lib.UPDATE_RULES}')


def make_rule(config: config_lib.ExperimentConfig) -> UpdateRule:
  """A freshly initialised update rule (the meta-learner) for this config.

  Its Keras name is the rule's name; its initialisation depends only on the
  config (`config.train.seed`).
  """
  name = config.meta_learner.update_rule
  if name not in RULES:
    raise ValueError(f'update_rule={name!r}: must be one of {tuple(RULES)}')
  return RULES[name].from_experiment(
      config.learner, config.meta_learner, seed=config.train.seed, name=name)


__all__ = ['RULES', 'UpdateRule', 'MetaLSTMRule', 'MetaLSTMLayer', 'SGDRule',
           'MetaSGDRule', 'make_rule']
