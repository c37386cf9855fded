"""The house rules, read from the source with `ast`: layers point one way, no import circles, the
orchestrator reaches backends only by name, modules stay small, tests and benches stay apart."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "tools", "models")
MAX_LINES = 500
# Modules of backends: the orchestrator reaches them through `tools.registry` only.
BACKEND_MODULES = ("tools.speech.piper", "tools.speech.cosyvoice", "tools.video", "tools.evaluators")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module the file imports, at module level or inside functions, named in full."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from tools import registry`
    return out


def source_files(*roots: str) -> list[Path]:
    return sorted(p for r in roots for p in (ROOT / r).rglob("*.py"))


def import_graph(roots=PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (only those that exist as files)."""
    files = {_module(p): p for p in source_files(*roots)}
    return {m: {i for i in _imports(p) if i in files and i != m} for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in graph.items():
        layer = mod.split(".")[0]
        for dep in deps:
            target = dep.split(".")[0]
            if layer in ("tools", "models") and target == "orchestrator" and not dep.startswith("orchestrator.schema"):
                bad.append(f"{mod} -> {dep}: tools and models may use only orchestrator.schema")
            if layer == "models" and target == "tools":
                bad.append(f"{mod} -> {dep}: models never import tools")
            if mod.startswith("orchestrator.schema") and not dep.startswith("orchestrator.schema"):
                bad.append(f"{mod} -> {dep}: schema imports nothing else of ours")
            if layer == "orchestrator" and dep.startswith(BACKEND_MODULES):
                bad.append(f"{mod} -> {dep}: the orchestrator reaches backends through tools.registry")
    return sorted(bad)


def test_layers_point_one_way():
    assert layer_violations(import_graph()) == []


def test_no_import_circles():
    assert cycles(import_graph(PACKAGES + ("tests", "bench"))) == []


def test_the_rule_checks_catch_what_they_guard():
    """Negative controls: a back-pointing import, a circle and a schema import are all reported."""
    graph = {"tools.x": {"orchestrator.context"}, "models.y": {"tools.base"}, "orchestrator.schema.cast": {"tools.base"},
             "orchestrator.retry": {"tools.speech.piper"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert len(layer_violations(graph)) == 4
    assert cycles(graph) == [["a", "b", "c"]]


def test_orchestrator_names_no_backend():
    """Speech and video backends declare what the orchestrator needs (take noise, audio guidance);
    only the config's defaults may spell their names."""
    from tools.registry import SPEECH, VIDEO

    names = set(SPEECH) | set(VIDEO)
    found = []
    for path in source_files("orchestrator"):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert found == []


@pytest.mark.parametrize("root", PACKAGES + ("tests", "bench"))
def test_modules_stay_small(root):
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in source_files(root)
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert long == []


def test_tests_and_benches_stay_apart():
    """Product code never imports tests or bench; bench and tests share `tests.fixtures`, and bench
    does not edit sys.path (run it as `python -m bench.<name>`)."""
    graph = import_graph(PACKAGES)
    assert [m for m, deps in graph.items() if any(d.split(".")[0] in ("tests", "bench") for d in deps)] == []
    for path in source_files("tests"):
        assert not any(i == "bench" or i.startswith("bench.") for i in _imports(path)), path
    for path in source_files("bench"):
        assert "sys.path" not in path.read_text(), f"{path.relative_to(ROOT)} edits sys.path"
