"""The package's import graph has no circle, and no module imports another's private name.

Every import counts: at module level and inside functions (a lazy import that dodges a circle
is still a circle), except those under `if TYPE_CHECKING:` (types only, never run). Read from
the source (ast), not by importing.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parent.parent / "xlogtools"


def _modules() -> dict[str, Path]:
    """Every module of the package, the C extensions (by their .c source) included."""
    out = {}
    for p in [*PKG_DIR.rglob("*.py"), *PKG_DIR.rglob("*.c")]:
        parts = list(p.relative_to(PKG_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The imports of a module that can run (not those under `if TYPE_CHECKING:`)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for c in child.orelse:
                    visit(c)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """module -> the package's modules it imports; and the private names imported across
    modules ("importer: module.name")."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for mod, path in mods.items():
        if path.suffix == ".c":
            continue
        is_pkg = path.name == "__init__.py"
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            else:
                if node.level:
                    base_parts = here[:len(here) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [(base, a.name) for a in node.names]
            for target, name in targets:
                if not target.startswith("xlogtools"):
                    continue
                sub = f"{target}.{name}" if name else None
                dest = sub if sub in mods else target
                while dest not in mods and "." in dest:
                    dest = dest.rsplit(".", 1)[0]
                if dest != mod:
                    graph[mod].add(dest)
                if (name and name.startswith("_") and sub not in mods and dest != mod
                        and name != "__version__"):
                    private.append(f"{mod}: {target}.{name}")
    return graph, private


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted.
    A package's own __init__ importing its submodules, which import names of the package
    back, is how Python packages are made: edges from a module to a package containing it
    are left out."""
    edges = {m: {d for d in ds if not m.startswith(d + ".")} for m, ds in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_circle() -> None:
    graph, _ = import_graph()
    assert len(graph) > 100 and sum(len(v) for v in graph.values()) > 200  # the graph is read
    assert circles(graph) == []


def test_no_private_name_imported_across_modules() -> None:
    _, private = import_graph()
    assert private == []


def test_the_checks_see_a_circle_and_a_private_import() -> None:
    """The checks themselves: a made-up circle of three and a private import are found."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p": set(), "p.x": {"p"}}
    assert circles(g) == [["a", "b", "c"]]
    tree = ast.parse("from .m import _hidden\nif TYPE_CHECKING:\n    import xlogtools.z\n")
    assert [type(n).__name__ for n in _imports(tree)] == ["ImportFrom"]
