"""The project's import graph: no cycles, and training (`xnor_keras`) never imports the
deploy side (`deploy`).

Every ``.py`` file under ``xnor_keras/`` and ``deploy/`` is parsed with `ast` (not
imported); each ``import`` / ``from … import …`` anywhere in it (function-level imports
too) that names a project module becomes an edge. ``from pkg import name`` is an edge
to ``pkg.name`` when that is a module, else to ``pkg``; relative imports are resolved
against the importing module's package; ``importlib.import_module("a.b")`` with a
literal name counts as an import too (it once hid a cycle). Importing a submodule also imports its parent
packages, but the edge kept is the most specific module named.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("xnor_keras", "deploy")


def module_files(root: Path, packages=PACKAGES) -> dict:
    """``{dotted module name: path}`` of every .py file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules) -> str | None:
    """The longest prefix of dotted ``name`` that is a project module, or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, source: str, modules, *, is_package: bool = False) -> set:
    """The project modules ``module`` (source text ``source``) imports."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                if node.level > 1:
                    base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
                     for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            names = [node.args[0].value]  # importlib.import_module("literal")
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict:
    """``{module: set of project modules it imports}``."""
    modules = module_files(root, packages)
    return {name: imports_of(name, path.read_text(), modules,
                             is_package=path.name == "__init__.py")
            for name, path in modules.items()}


def find_cycle(graph: dict) -> list | None:
    """One cycle ``[a, b, …, a]`` of a directed graph ``{node: successors}``, or None
    (depth-first search; a successor still on the stack closes a cycle)."""
    on_stack, done = {}, set()

    def visit(node, path):
        on_stack[node] = len(path)
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor in on_stack:
                return path[on_stack[successor]:] + [successor]
            if successor not in done:
                cycle = visit(successor, path)
                if cycle:
                    return cycle
        path.pop()
        del on_stack[node]
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None  # diamond
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y"}}) == ["y", "y"]
    assert find_cycle({"a": set(), "p": {"q"}, "q": {"r"}, "r": {"q"}}) == ["q", "r", "q"]


def test_imports_of_resolves_from_imports_relative_imports_and_submodules():
    modules = {"pkg": None, "pkg.a": None, "pkg.b": None, "pkg.sub": None, "pkg.sub.c": None,
               "other": None}
    source = "\n".join([
        "import numpy",
        "from pkg import b, CONSTANT",       # pkg.b is a module; CONSTANT is in pkg
        "from . import sub",                 # relative: pkg.sub
        "def f():",
        "    from .sub.c import g",          # function-level, relative
        "    import other.thing",            # resolves to its longest module prefix
        "    importlib.import_module('pkg.sub.c')",
    ])
    assert imports_of("pkg.a", source, modules) == {"pkg.b", "pkg", "pkg.sub", "pkg.sub.c",
                                                    "other"}
    assert imports_of("pkg.b", "import importlib\nimportlib.import_module('pkg.a')",
                      modules) == {"pkg.a"}
    assert imports_of("pkg.sub.c", "from .. import a\nfrom ..b import x", modules) == \
        {"pkg.a", "pkg.b"}
    assert imports_of("pkg.sub", "from . import c", modules, is_package=True) == {"pkg.sub.c"}


def test_graph_of_synthetic_packages_exposes_a_cycle(tmp_path):
    (tmp_path / "xnor_keras").mkdir()
    (tmp_path / "xnor_keras" / "__init__.py").write_text("")
    (tmp_path / "xnor_keras" / "a.py").write_text("from xnor_keras import b\n")
    (tmp_path / "xnor_keras" / "b.py").write_text("def f():\n    from . import a\n")
    graph = import_graph(tmp_path, ("xnor_keras",))
    assert graph["xnor_keras.a"] == {"xnor_keras.b"}
    assert find_cycle(graph) == ["xnor_keras.a", "xnor_keras.b", "xnor_keras.a"]


@pytest.fixture(scope="module")
def graph():
    graph = import_graph()
    assert "deploy.runtime" in graph and "xnor_keras.training" in graph
    return graph


def test_project_imports_have_no_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_training_package_never_imports_deploy(graph):
    wrong = sorted(f"{module} → {target}" for module, targets in graph.items()
                   if module.split(".")[0] == "xnor_keras"
                   for target in targets if target.split(".")[0] == "deploy")
    assert not wrong, "xnor_keras must not import deploy: " + ", ".join(wrong)
