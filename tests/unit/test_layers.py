"""The package's structure: no import cycle, and no module importing from a layer above it.

Data flows one way (DESIGN.md): callers → compose → outbox → delivery → transports, with
consent consulted at composition and at claim. As imports, that is the stack of layers below,
lowest first; a module may import from its own layer and the ones under it. Imports under
``if TYPE_CHECKING:`` are left out (they never run); imports inside functions count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailroom

PACKAGE = Path(mailroom.__file__).parent

# Lowest first. A module belongs to the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mailroom.errors", "mailroom.domains", "mailroom.mime_fast", "mailroom.csv_lines"),
    ("mailroom.message",),
    ("mailroom.config", "mailroom.logs"),
    ("mailroom.transports",),
    ("mailroom.outbox", "mailroom.sending"),  # sending: the process's own outbox
    ("mailroom.consent", "mailroom.access", "mailroom.tracking"),
    ("mailroom.compose",),
    ("mailroom.notifications",),
    ("mailroom.campaigns",),
    ("mailroom.delivery",),
    ("mailroom.integrations", "mailroom"),  # "mailroom": the package's face only
    ("mailroom.cli", "mailroom.__main__", "mailroom.web"),
)


def module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            nested = prefix != "mailroom" and module.startswith(prefix + ".")
            longer = best is None or len(prefix) > best[0]
            if (module == prefix or nested) and longer:
                best = (len(prefix), rank)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[1]


def _runtime_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> set[str]:
    """The mailroom modules ``module`` imports when it runs."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mailroom")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "mailroom":
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    found.discard(module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_it(module: str) -> None:
    above = sorted(i for i in GRAPH[module] if layer_of(i) > layer_of(module))
    assert not above, f"{module} (layer {layer_of(module)}) imports from above: {above}"


def test_there_is_no_import_cycle() -> None:
    # Tarjan's strongly connected components; any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in MODULES:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_layer_violation_and_a_cycle() -> None:
    """The two checks above can fail: a known-bad graph is caught by the same rules."""
    assert layer_of("mailroom.transports.smtp") < layer_of("mailroom.outbox.queries")
    assert layer_of("mailroom.cli.base") > layer_of("mailroom.delivery.worker")
    assert "mailroom.outbox.schema" in GRAPH["mailroom.outbox.queries"]
