"""The update-rule interface every rule implements, checked for each rule."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from meta_lstm_tf import config as config_lib
from meta_lstm_tf import rules

_LEARNER = config_lib.LearnerConfig(num_ways=2, num_filters=2, num_blocks=1,
                                    image_size=4)


def _rule(name, **meta):
  return rules.RULES[name].from_experiment(
      _LEARNER, config_lib.MetaLearnerConfig(update_rule=name, hidden_size=3,
                                             **meta), seed=1)


class InterfaceTest(tf.test.TestCase, parameterized.TestCase):

  def test_base_class_leaves_the_maths_to_subclasses(self):
    rule = rules.UpdateRule(_LEARNER.__dict__.copy())
    weights = object()
    self.assertIs(rule.prepare(weights), weights)
    for call in (rule.meta_weights,
                 lambda: rule.initial_state(None, tf.zeros([3])),
                 lambda: rule.update(None, None, tf.zeros([3]), 0.0)):
      with self.assertRaises(NotImplementedError):
        call()

  @parameterized.parameters('meta_lstm', 'sgd', 'meta_sgd')
  def test_states_carry_params_and_gates_and_prepare_is_stable(self, name):
    rule = _rule(name)
    weights = rule.prepare(rule.meta_weights())
    # The same meta-weights prepare to the same structure every time.
    tf.nest.assert_same_structure(rule.prepare(rule.meta_weights()), weights)
    theta0 = tf.convert_to_tensor(rule.initial_params)
    state = rule.initial_state(weights, theta0)
    self.assertAllEqual(state.params, theta0)
    grad = tf.random.stateless_normal(theta0.shape, seed=[1, 2])
    new = rule.update(weights, state, grad, tf.constant(0.5))
    for field in ('params', 'forget_gate', 'input_gate'):
      self.assertEqual(getattr(new, field).shape, theta0.shape, field)
    # Every rule is theta_t = f_t * theta_{t-1} - i_t * grad_t.
    self.assertAllClose(new.params,
                        new.forget_gate * theta0 - new.input_gate * grad,
                        rtol=1e-6, atol=1e-7)

  def test_sgd_gates_are_one_and_the_learning_rate(self):
    rule = _rule('sgd', inner_lr=0.3)
    weights = rule.prepare(rule.meta_weights())
    theta0 = tf.convert_to_tensor(rule.initial_params)
    new = rule.update(weights, rule.initial_state(weights, theta0),
                      tf.ones_like(theta0), tf.constant(1.0))
    self.assertAllClose(new.forget_gate, np.ones(theta0.shape))
    self.assertAllClose(new.input_gate, np.full(theta0.shape, 0.3))

  def test_meta_lstm_gates_start_as_configured(self):
    rule = _rule('meta_lstm', gate_init='inner_lr', inner_lr=0.05,
                 forget_gate_init=0.999, gate_bias='per_tensor')
    weights = rule.prepare(rule.meta_weights())
    theta0 = tf.convert_to_tensor(rule.initial_params)
    new = rule.update(weights, rule.initial_state(weights, theta0),
                      tf.zeros_like(theta0), tf.constant(1.0))
    # Small weights (U(-0.01, 0.01)): the gates are about the biases'.
    self.assertAllClose(new.input_gate, np.full(theta0.shape, 0.05),
                        atol=5e-3)
    self.assertAllClose(new.forget_gate, np.full(theta0.shape, 0.999),
                        atol=1e-3)
    # Near 1 only the logits tell gates apart (0.999 and 0.9999 are 1e-3
    # close, their logits 6.91 and 9.21): each gate's logit is its bias's,
    # logit(configured value), up to the small weights' share (measured
    # under 0.005).
    def logit(gate):
      gate = np.asarray(gate, np.float64)
      return np.log(gate) - np.log1p(-gate)

    self.assertAllClose(logit(new.forget_gate),
                        np.full(theta0.shape, logit(0.999)), atol=0.05)
    self.assertAllClose(logit(new.input_gate),
                        np.full(theta0.shape, logit(0.05)), atol=0.05)

  @parameterized.parameters('meta_lstm', 'sgd', 'meta_sgd')
  def test_set_initial_params_checks_then_assigns(self, name):
    rule = _rule(name)
    before = rule.initial_params.numpy()
    values = np.arange(before.size, dtype=np.float32) / before.size
    for bad, message in ((values[:-1], 'coordinates'),
                         (np.full_like(values, np.nan), 'NaN')):
      with self.assertRaisesRegex(ValueError, message):
        rule.set_initial_params(bad)
      self.assertAllEqual(rule.initial_params, before)
    rule.set_initial_params(values)
    self.assertAllEqual(rule.initial_params, values)

  def test_config_kwargs_reach_the_rule(self):
    self.assertEqual(_rule('sgd', inner_lr=0.3).learning_rate, 0.3)
    meta_lstm = _rule('meta_lstm', gate_bias='per_coordinate',
                      gate_bias_scale=4.0)
    self.assertEqual((meta_lstm.hidden_size, meta_lstm.gate_bias,
                      meta_lstm.gate_bias_scale), (3, 'per_coordinate', 4.0))


if __name__ == '__main__':
  tf.test.main()
