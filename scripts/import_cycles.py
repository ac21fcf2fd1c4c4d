"""The import cycles of a package: the strongly connected groups of its module graph.

    python scripts/import_cycles.py src/mixrag

Every import of the package's own modules counts, wherever it is written: at module
level, inside a function, or under ``if TYPE_CHECKING:``; and importing ``a.b.c`` also
imports the packages ``a.b`` (their ``__init__`` runs first). Prints each group of
mutually dependent modules and their count; exits 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (directly or as an enclosing package)."""
    modules = module_files(root)
    top = root.name

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] == top:
                    for alias in node.names:  # `from a import b` may name module a.b
                        target = known(f"{node.module}.{alias.name}")
                        targets.add(target if target and target != node.module else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == top)
        for target in targets:
            name = known(target)
            parts = name.split(".") if name else []
            for i in range(2, len(parts) + 1):  # the packages around it run first
                enclosing = ".".join(parts[:i])
                if enclosing != module and not module.startswith(enclosing + "."):
                    graph[module].add(enclosing)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src/mixrag")
    found = cycles(import_graph(root))
    for group in found:
        print(f"{len(group)} modules: {', '.join(group)}")
    print(f"import cycles in {root}: {len(found)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
