"""The package's layers: each module imports only from its own layer or below, the
modules' imports form no cycle, and ``tools/`` are thin scripts over ``cli``.

Read from the source (every ``import`` / ``from`` statement, those inside functions
included), so a lazy import cannot hide an upward dependency.
"""
import ast
import os

import pytest

from tests.support import ROOT

PACKAGE = os.path.join(ROOT, 'efficientvit_det')
#: bottom to top; a module imports only what is at its layer or below
LAYERS = [
    ('errors', 'log', 'fileio'),
    ('checkpoints',),
    ('models',),
    ('mmlab',),
    ('deploy',),
    ('benchmark',),
    ('cli',),
]


def module_name(path: str) -> str:
    relative = os.path.relpath(path, ROOT)[:-len('.py')].replace(os.sep, '.')
    return relative[:-len('.__init__')] if relative.endswith('.__init__') else relative


def package_modules():
    """{module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: str):
    """The package modules ``name`` imports (absolute names), with their lines."""
    package = name if path.endswith('__init__.py') else name.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                base = f'{base}.{node.module}' if node.module else base
            else:
                base = node.module or ''
            # ``from . import x`` / ``from .pkg import module`` name modules themselves
            targets = [base] + [f'{base}.{alias.name}' for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split('.')[0] == 'efficientvit_det':
                yield target, node.lineno


def layer_of(name: str) -> int:
    parts = name.split('.')
    if len(parts) == 1:
        return len(LAYERS)  # the package's __init__: the public surface, above all
    for index, members in enumerate(LAYERS):
        if parts[1] in members:
            return index
    raise AssertionError(f'{name} belongs to no layer: add it to LAYERS in {__file__}')


def dependencies():
    """{module: {imported module: line}} within the package (module-level resolution:
    ``from .x import y`` depends on ``x``, or on ``x.y`` when that is a module)."""
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {}
        for target, line in imports_of(name, path):
            if target in modules:
                graph[name].setdefault(target, line)
    return graph


def upward_imports(graph):
    return [f'{name}:{line} imports {target} (layer {layer_of(target)} > {layer_of(name)})'
            for name, targets in graph.items() for target, line in targets.items()
            if layer_of(target) > layer_of(name)]


def cycle_in(graph):
    """One import cycle (a list of modules), or None."""
    state = {}

    def visit(node, path):
        state[node] = 'open'
        for target in graph.get(node, {}):
            if state.get(target) == 'open':
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[node] = 'done'
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_every_module_has_a_layer_and_imports_nothing_above_it():
    graph = dependencies()
    assert len(graph) > 40
    assert upward_imports(graph) == []


def test_the_modules_import_each_other_without_a_cycle():
    graph = dependencies()
    # a package's __init__ and its own modules are one unit here
    collapsed = {name: {t: line for t, line in targets.items()
                        if not t.startswith(name + '.')}
                 for name, targets in graph.items()}
    assert cycle_in(collapsed) is None


def test_an_upward_import_and_a_cycle_are_found():
    """The two checks above on a graph with a planted upward import and cycle."""
    graph = dependencies()
    graph['efficientvit_det.models.base']['efficientvit_det.mmlab.scope'] = 1
    assert upward_imports(graph) == [
        'efficientvit_det.models.base:1 imports efficientvit_det.mmlab.scope (layer 3 > 2)']
    graph['efficientvit_det.checkpoints.layouts']['efficientvit_det.checkpoints.fit'] = 1
    assert cycle_in(graph) is not None


@pytest.mark.parametrize('script', sorted(
    os.path.relpath(os.path.join(folder, name), ROOT)
    for folder, _, files in os.walk(os.path.join(ROOT, 'tools')) for name in files
    if name.endswith('.py')))
def test_tools_are_thin_scripts_over_the_cli_package(script):
    """No logic in ``tools/``: a docstring, imports from ``efficientvit_det.cli`` and
    the ``run(...)`` call, so everything a tool does can be imported and tested."""
    tree = ast.parse(open(os.path.join(ROOT, script)).read())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert node.module.startswith('efficientvit_det.cli'), (script, node.module)
        elif isinstance(node, ast.If):  # if __name__ == '__main__': run(main)
            assert len(node.body) == 1 and ast.unparse(node.body[0]).startswith('run('), script
        else:
            assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant), \
                (script, ast.unparse(node)[:80])
