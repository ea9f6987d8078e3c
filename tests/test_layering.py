"""The project's layering, checked by walking every import (module level and inside functions):

core imports no other package (devices aside); train, converters and edge import core (and devices), never each
other; benchmarks may import everything and nothing installed imports it; the studies in experiments/ (not
installed) may import everything and nothing else imports them; no import cycles between modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "train", "converters", "edge", "benchmarks", "devices", "configs", "experiments")
INSTALLED = PACKAGES[:-1]
ALLOWED = {
    "core": {"core", "devices"},
    "devices": {"devices"},
    "train": {"train", "core", "devices", "configs"},
    "converters": {"converters", "core", "devices"},
    "edge": {"edge", "core", "devices"},
    "configs": {"configs"},
    "benchmarks": set(INSTALLED),
    "experiments": set(PACKAGES),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import name refers to (the longest existing prefix), or None if not ours."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in the file (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import submodule` imports the submodule
            names = [f"{base}.{a.name}" if resolve(f"{base}.{a.name}", modules) == f"{base}.{a.name}" else base
                     for a in node.names]
        else:
            continue
        for name in names:
            target = resolve(name, modules)
            if target is not None and target != me:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def package_edges_against_layering(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            if target.split(".")[0] not in ALLOWED[top]:
                bad.append(f"{module} imports {target}")
    return bad


def test_no_import_against_the_data_flow():
    bad = package_edges_against_layering(import_graph())
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_nothing_imports_benchmarks():
    graph = import_graph()
    users = [m for m, targets in graph.items() if m.split(".")[0] not in ("benchmarks", "experiments")
             and any(t.startswith("benchmarks") for t in targets)]
    assert not users, users


def test_nothing_installed_imports_experiments():
    graph = import_graph()
    users = [m for m, targets in graph.items() if not m.startswith("experiments")
             and any(t.startswith("experiments") for t in targets)]
    assert not users, users


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_violations_and_cycles():
    # the walker itself must catch what it is there to catch
    graph = {"core.a": {"train.fit"}, "train.fit": {"core.a"}, "converters.x": {"edge.run"}, "edge.run": set()}
    assert set(package_edges_against_layering(graph)) == {"core.a imports train.fit",
                                                          "converters.x imports edge.run"}
    assert find_cycles(graph) == [["core.a", "train.fit"]]
    modules = project_modules()
    assert "converters.onnx" in imports_of(REPO / "converters" / "int8.py", modules)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_walked(package):
    assert any(m == package or m.startswith(package + ".") for m in project_modules())
