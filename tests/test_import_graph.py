"""The package's imports point down, and the checkpoint modules have no
import cycle.

The graph is read from the source (``ast``), not by importing: every
``import`` and ``from ... import`` counts, at module level or inside a
function (a function-level import that dodges a cycle is still the cycle).
An edge goes to the module an import names: ``from .a import b`` goes to
``a.b`` when that is a module, else to ``a``. The packages above a module,
whose ``__init__`` runs first, are not edges of their own.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Optional, Set

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = 'mmdet_detr'
# The model side, and what it must not import: the tool side reads what the
# models declare, never the other way round.
LOWER = ('models', 'ops')
UPPER = ('checkpoint', 'engine', 'apis', 'benchmark', 'visualization',
         'deploy')

Graph = Dict[str, Set[str]]


def module_files(root: str, package: str) -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``
    (a package is its ``__init__.py``)."""
    modules = {}
    for folder, _, files in os.walk(osp.join(root, package)):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(folder, name)
            parts = osp.relpath(path, root)[:-len('.py')].split(os.sep)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            modules['.'.join(parts)] = path
    return modules


def import_graph(root: str, package: str) -> Graph:
    """Each module of ``package`` -> the modules of ``package`` it imports."""
    modules = module_files(root, package)
    graph = {}
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        # What a relative import is relative to.
        here = module if path.endswith('__init__.py') else module.rpartition(
            '.')[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.add(_known(alias.name, modules))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = here.split('.')
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = '.'.join(parts + ([base] if base else []))
                for alias in node.names:
                    submodule = f'{base}.{alias.name}'
                    targets.add(submodule if submodule in modules else
                                _known(base, modules))
        targets.discard(None)
        targets.discard(module)
        graph[module] = targets
    return graph


def _known(name: str, modules: Dict[str, str]) -> Optional[str]:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split('.')
    for end in range(len(parts), 0, -1):
        prefix = '.'.join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def find_cycle(graph: Graph, members: Set[str]) -> Optional[List[str]]:
    """The shortest cycle through the first of ``members`` (sorted) that is
    on one, as ``[a, b, ..., a]``; None if none is."""
    for start in sorted(members):
        parent = {}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                for target in sorted(graph.get(node, ())):
                    if target in parent:
                        continue
                    parent[target] = node
                    if target == start:
                        cycle = [start]
                        while len(cycle) == 1 or cycle[-1] != start:
                            cycle.append(parent[cycle[-1]])
                        return cycle[::-1]
                    following.append(target)
            frontier = following
    return None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + '.')


def test_models_and_ops_import_nothing_of_the_tool_side():
    graph = import_graph(REPO_ROOT, PACKAGE)
    lower = [f'{PACKAGE}.{name}' for name in LOWER]
    upper = [f'{PACKAGE}.{name}' for name in UPPER]
    assert any(_within(m, lower[0]) for m in graph), 'no models/ found'
    wrong = sorted(
        f'{module} imports {target}' for module, targets in graph.items()
        if any(_within(module, p) for p in lower) for target in targets
        if any(_within(target, p) for p in upper))
    assert not wrong, '\n'.join(wrong)


def test_checkpoint_modules_have_no_import_cycle():
    graph = import_graph(REPO_ROOT, PACKAGE)
    checkpoint = {m for m in graph if _within(m, f'{PACKAGE}.checkpoint')}
    assert len(checkpoint) > 5, 'no checkpoint/ modules found'
    cycle = find_cycle(graph, checkpoint)
    assert cycle is None, ' -> '.join(cycle)


def test_graph_resolves_relative_and_function_level_imports(tmp_path):
    """The checks above can fail: a cycle closed by a function-level
    relative import is found, and a model importing the engine is seen."""
    files = {
        'pkg/__init__.py': '',
        'pkg/a.py': 'from .sub.b import f\n',
        'pkg/sub/__init__.py': '',
        'pkg/sub/b.py': ('from . import c\n'
                         'import os\n\n'
                         'def f():\n'
                         '    from ..a import g\n'),
        'pkg/sub/c.py': 'import pkg.sub.d.missing_name\n',
        'pkg/sub/d.py': '',
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    graph = import_graph(str(tmp_path), 'pkg')
    assert graph == {
        'pkg': set(),
        'pkg.a': {'pkg.sub.b'},
        'pkg.sub': set(),
        'pkg.sub.b': {'pkg.sub.c', 'pkg.a'},
        'pkg.sub.c': {'pkg.sub.d'},
        'pkg.sub.d': set(),
    }
    assert find_cycle(graph, {'pkg.a'}) == ['pkg.a', 'pkg.sub.b', 'pkg.a']
    assert find_cycle(graph, {'pkg.sub.c'}) is None
