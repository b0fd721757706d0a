"""The folder tree is the architecture: these tests fail when an import breaks it.

Data flows one way (source -> decode/analyzers -> rules -> sink; the run and the commands on
top), so no module may import a module that imports it back, no module may import another's
private (underscore) names, and each stage imports only what lies below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PARTS = ("engine", "grammar", "formats", "rules")
MAX_LINES = 420  # "a few hundred lines": a module past this does more than one job
# Written by a generator, never by hand (tests/test_formats_derived.py keeps it current)
GENERATED = frozenset({"formats/derived.py"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "pcapconstrictor." + ".".join(parts)


MODULES = {_module_name(p): p for part in PARTS for p in sorted((ROOT / part).rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of ours, lazy ones too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("pcapconstrictor")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("pcapconstrictor"):
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            out += [(f"{target}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                out.append((target, rest, node.lineno))
    return out


EDGES = {name: _imports(name, path) for name, path in MODULES.items()}


def _graph() -> dict[str, set[str]]:
    return {name: {t for t, _, _ in edges if t in MODULES and t != name} for name, edges in EDGES.items()}


def test_no_module_imports_a_module_that_imports_it_back():
    graph, index, low, stack, on_stack, cycles = _graph(), {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_module_imports_another_modules_private_names():
    private = [f"{MODULES[m].relative_to(ROOT)}:{line} takes {n} from {t}"
               for m, edges in EDGES.items() for t, names, line in edges
               for n in names if n.startswith("_") and t != m]  # fmt: skip
    assert private == []


# What each part may import of ours (prefixes); the run and the commands sit on top.
ALLOWED = {
    "pcapconstrictor.formats": ("pcapconstrictor.formats",),
    "pcapconstrictor.engine.config": ("pcapconstrictor.engine.config",),
    "pcapconstrictor.engine.sources": ("pcapconstrictor.formats", "pcapconstrictor.engine.sources",
                                       "pcapconstrictor.engine.config"),
    "pcapconstrictor.engine.analysis": ("pcapconstrictor.formats", "pcapconstrictor.engine.analysis",
                                        "pcapconstrictor.engine.config"),
    # grammar sees only the declared interface: fact catalogue, analyzer registry, decoder fields,
    # reasons, config keys (and the wire constants of formats/, which import nothing)
    "pcapconstrictor.grammar": ("pcapconstrictor.grammar", "pcapconstrictor.engine.analysis",
                                "pcapconstrictor.engine.config", "pcapconstrictor.formats"),
    "pcapconstrictor.engine.sinks": ("pcapconstrictor.formats", "pcapconstrictor.engine.sinks",
                                     "pcapconstrictor.engine.sources.record_batch",
                                     # runs of input records and blocks copied as they are (issue 21)
                                     "pcapconstrictor.engine.sources.pcap_records",
                                     "pcapconstrictor.engine.sources.pcapng_packets",
                                     # a pcapng output keeps the input's sections and interfaces
                                     "pcapconstrictor.engine.sources.pcapng_reader",
                                     "pcapconstrictor.engine.config", "pcapconstrictor.engine.analysis",
                                     "pcapconstrictor.grammar", "pcapconstrictor.engine.version"),
}  # fmt: skip


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_stage_imports_only_what_lies_below_it(part):
    wrong = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {t}"
             for m, edges in EDGES.items() if m == part or m.startswith(part + ".")
             for t, _, line in edges if not t.startswith(ALLOWED[part])]  # fmt: skip
    assert wrong == []


def test_no_module_is_longer_than_a_few_hundred_lines():
    # a generated module (formats/derived.py, engine/run/shipped_*.py) is as long as its source
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in MODULES.values()
             if "GENERATED by" not in p.read_text()[:200]}  # fmt: skip
    long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in GENERATED}
    assert long == {}


def test_every_sub_package_says_what_lives_there_and_what_it_may_import():
    for path in MODULES.values():
        if path.name == "__init__.py" and path.parent.parent.name == "engine":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "import" in doc, f"{path.relative_to(ROOT)}: docstring must say what it may import"
