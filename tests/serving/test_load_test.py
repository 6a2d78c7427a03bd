"""Smoke test of the serving load test (benchmarks/load_test.py): a few
threads and requests against the tiny learner of the serving tests."""

import shutil
import tempfile

import tensorflow as tf

from meta_lstm_tf.benchmarks import load_test
from tests.fixtures import serving as fixtures


class LoadTestSmokeTest(tf.test.TestCase):

  def test_good_answered_correctly_bad_rejected_by_name(self):
    tmp = tempfile.mkdtemp(prefix='test_load_test_')
    self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    # The tiny learner of the serving tests keeps it fast.
    config = fixtures.tiny_config()
    export_dir = load_test.fresh_export(tmp, config=config)
    result = load_test.run_load_test(export_dir, num_threads=4,
                                     requests_per_thread=3, bad_fraction=0.5,
                                     queries_per_class=2)
    self.assertContainsSubset(
        {'throughput_requests_per_sec', 'latency_ms_p50', 'latency_ms_p99',
         'wrong_answers', 'good_errors', 'bad_by_kind', 'peak_rss_mib',
         'single_request_peak_rss_growth_mib',
         'bomb_request_peak_rss_growth_mib', 'all_good_correct',
         'all_bad_rejected_naming_input'}, set(result))
    self.assertEqual((result['requests'], result['bad_requests']), (12, 6))
    self.assertEqual(result['wrong_answers'], 0)
    self.assertEqual(result['good_errors'], 0)
    self.assertTrue(result['all_good_correct'])
    # Every kind was sent and each was refused naming the input.
    for kind, counts in result['bad_by_kind'].items():
      self.assertGreater(counts['sent'], 0, kind)
      self.assertEqual(counts['rejected_naming_input'], counts['sent'], kind)
    self.assertTrue(result['all_bad_rejected_naming_input'])


if __name__ == '__main__':
  tf.test.main()
