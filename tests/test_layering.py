"""The package's layering, read from the source (AST), imports inside functions included: no import circle among
sculptcli modules, and every import goes to the same layer or a lower one. The layer order is written once, here,
and mirrored in README's "Layout" section.

Allowed: a package's `__init__` importing its own modules (to register them, or the root's lazy API), and imports
under `if TYPE_CHECKING:` (type annotations only, never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import sculptcli

ROOT = Path(sculptcli.__file__).resolve().parent

# Lowest first. A module belongs to the layer of its longest listed prefix ("sculptcli" itself: the root only).
LAYERS: list[list[str]] = [
    # leaves and plumbing: errors, registries, YAML, presets, validation messages, files, devices, statistics
    ["sculptcli", "sculptcli.errors", "sculptcli.faults", "sculptcli.registry", "sculptcli.provenance",
     "sculptcli.yamlfile", "sculptcli.presetfiles", "sculptcli.validation", "sculptcli.io", "sculptcli.device",
     "sculptcli.precision", "sculptcli.stats", "sculptcli.ckptfile", "sculptcli.rundir", "sculptcli.lazy",
     "sculptcli.trackers", "sculptcli.metric_catalog"],
    # components, registered by name
    ["sculptcli.priors", "sculptcli.data", "sculptcli.models", "sculptcli.objectives", "sculptcli.metrics"],
    # the run configuration
    ["sculptcli.config"],
    # the build station and the run station's writing half
    ["sculptcli.checkpoint", "sculptcli.optim", "sculptcli.preflight", "sculptcli.codes", "sculptcli.build",
     "sculptcli.runfiles"],
    # the run station's reading half and scoring
    ["sculptcli.scoring", "sculptcli.run", "sculptcli.aggregate"],
    # what uses runs: figures, latent copying, the trainer
    ["sculptcli.viz", "sculptcli.copying", "sculptcli.training", "sculptcli.checks"],
    # the two doors
    ["sculptcli.api", "sculptcli.cli", "sculptcli.__main__"],
]  # fmt: skip
LEAVES = {"sculptcli.yamlfile", "sculptcli.presetfiles", "sculptcli.validation"}  # import only errors and registry


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("sculptcli", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = modules()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported(name: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The sculptcli modules an import statement of module `name` loads (absolute or relative)."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = name.split(".") if is_package(name) else name.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, *([node.module] if node.module else [])])
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for t in targets:
        while t not in MODULES and "." in t:
            t = t.rsplit(".", 1)[0]
        if t in MODULES and t != name:
            out.append(t)
    return out


def runtime_imports(tree: ast.AST):
    """Every import node, at any depth (functions too), except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def graph() -> dict[str, set[str]]:
    g = {}
    for name, path in MODULES.items():
        deps = set()
        for node in runtime_imports(ast.parse(path.read_text())):
            deps.update(imported(name, node))
        # a package's __init__ importing its own modules (registration, lazy exports) is allowed
        g[name] = {d for d in deps if not (is_package(name) and d.startswith(name + "."))}
    return g


def layer(name: str) -> int | None:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            matches = name == p or (p != "sculptcli" and name.startswith(p + "."))
            if matches and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_import_reader_sees_imports_inside_functions_and_skips_type_checking_blocks():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sculptcli.api import prior\n"
        "def f():\n    from sculptcli.run import open_run\n    from . import build\n"
    )
    found = [m for node in runtime_imports(tree) for m in imported("sculptcli.codes", node)]
    assert sorted(found) == ["sculptcli.build", "sculptcli.run"]


def test_no_import_circle_among_sculptcli_modules():
    assert cycles(graph()) == []


def test_every_module_has_a_layer_and_imports_only_its_layer_or_lower():
    g = graph()
    unplaced = sorted(m for m in g if layer(m) is None)
    assert unplaced == [], f"give these modules a layer in LAYERS: {unplaced}"
    upward = sorted(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})" for m, ds in g.items() for d in ds
                    if layer(d) > layer(m))  # fmt: skip
    assert upward == []


def test_yaml_presets_and_validation_messages_are_leaves_and_stats_sit_below_objectives_and_metrics():
    g = graph()
    for leaf in LEAVES:
        assert g[leaf] <= {"sculptcli.errors", "sculptcli.registry"}, (leaf, g[leaf])
    assert layer("sculptcli.stats.mmd") < layer("sculptcli.objectives.divergences")
    assert layer("sculptcli.stats.mmd") < layer("sculptcli.metrics.distribution")
    readers = ["sculptcli.run", "sculptcli.scoring", "sculptcli.cli.score", "sculptcli.cli.traverse",
               "sculptcli.cli.compare", "sculptcli.copying"]  # fmt: skip
    for reader in readers:  # a reader never imports the trainer (`copy-latent` trains a student: it may)
        assert not any(d.startswith("sculptcli.training") for d in g[reader]), (reader, g[reader])
