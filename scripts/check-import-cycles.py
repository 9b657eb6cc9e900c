"""Fail when the modules of agent_service, executor_service and firebox import each other in a
circle (`make lint`). Every import counts: at module level, inside functions and under
TYPE_CHECKING, since each is a dependency a reader has to follow. `from pkg import mod` is an
import of pkg.mod when that is a module. Generated *_pb2 modules are left out.

    python scripts/check-import-cycles.py            # exit 1 listing each cycle
    python scripts/check-import-cycles.py --graph    # also print every module's imports
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("agent_service", "executor_service", "firebox")
ROOT = Path(__file__).resolve().parent.parent


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "_pb2" in path.name:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {target for target in out if target in known and target != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    if "--graph" in sys.argv:
        for name in sorted(graph):
            print(f"{name} -> {', '.join(sorted(graph[name])) or '(nothing of ours)'}")
    found = cycles(graph)
    for component in found:
        inside = {m: sorted(graph[m] & set(component)) for m in component}
        print("import cycle: " + "; ".join(f"{m} -> {', '.join(t)}" for m, t in inside.items()))
    if found:
        return 1
    print(f"check-import-cycles: {len(graph)} modules, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
