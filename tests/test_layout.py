"""The package's shape: at most about ten top-level modules beside the
sub-packages, no module over 400 lines, no function over 80 (the limits of
issue 23; the house style keeps them)."""

import ast
import glob
import os
import unittest

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'meta_lstm_tf')
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL_MODULES = 10


def _modules():
  return sorted(glob.glob(os.path.join(_PACKAGE, '**', '*.py'),
                          recursive=True))


class LayoutTest(unittest.TestCase):

  def test_top_level_modules(self):
    top = [os.path.basename(p) for p in glob.glob(
        os.path.join(_PACKAGE, '*.py')) if not p.endswith('__init__.py')]
    self.assertLessEqual(len(top), MAX_TOP_LEVEL_MODULES, sorted(top))

  def test_module_and_function_lengths(self):
    too_long = []
    for path in _modules():
      with open(path) as f:
        source = f.read()
      lines = source.count('\n')
      if lines > MAX_MODULE_LINES:
        too_long.append(f'{path}: {lines} lines')
      for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          length = node.end_lineno - node.lineno + 1
          if length > MAX_FUNCTION_LINES:
            too_long.append(f'{path}:{node.lineno} {node.name}: {length} '
                            'lines')
    self.assertEqual(too_long, [])

  def test_library_code_never_imports_the_binaries(self):
    # Only bin/ and the two entry-point modules may import meta_lstm_tf.bin.
    offenders = []
    for path in _modules():
      relative = os.path.relpath(path, _PACKAGE)
      if relative.startswith('bin' + os.sep) or relative in ('main.py',
                                                             'benchmark.py'):
        continue
      with open(path) as f:
        tree = ast.parse(f.read())
      for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ''] if isinstance(node, ast.ImportFrom)
                 else [])
        if any(n == 'meta_lstm_tf.bin' or n.startswith('meta_lstm_tf.bin.')
               for n in names):
          offenders.append(relative)
    self.assertEqual(offenders, [])


if __name__ == '__main__':
  unittest.main()
