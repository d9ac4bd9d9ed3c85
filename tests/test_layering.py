"""The package's layers, checked statically: no import cycle between subpackages or between modules, and each
subpackage imports only the layers below it (cli -> training / speculative / distill -> weights -> models).

Every `import` and `from ... import` of every module counts, at the top of the module or inside a function alike:
an import inside a function hides a cycle from Python's import machinery, not from this test.
"""

import ast
import pathlib

import pard_jax

PACKAGE = pathlib.Path(pard_jax.__file__).parent

# What each subpackage may import from the others. Top-level modules are shared utilities (errors, dtypes,
# config_io, sharding, distributed, program_cost) that import no subpackage, except the layers named in TOP.
BELOW = {
    "models": set(),
    "weights": {"models"},
    "distill": {"models", "weights"},
    "speculative": {"models", "weights"},
    "training": {"models", "weights", "distill"},
    "cli": {"models", "weights", "distill", "speculative", "training"},
}
TOP = {"api": {"models", "weights", "speculative"}}  # the Python API: a layer over generation, like cli


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: pathlib.Path) -> list[tuple[str, int]]:
    """(pard_jax module imported, line) for every import in the file, wherever it stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:  # `from pkg import module` imports the module; `from module import name` the module
                found.append((f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base, node.lineno))
    return [(m, line) for m, line in found if m == "pard_jax" or m.startswith("pard_jax.")]


def unit(module: str) -> str:
    """The subpackage a module belongs to, or the top-level module's own name ("pard_jax" for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pard_jax"


def module_graph() -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of one import of it}."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        edges = graph.setdefault(module_name(path), {})
        for target, line in imports(path):
            edges.setdefault(target, f"{path.relative_to(PACKAGE.parent)}:{line}")
    return graph


def unit_graph(graph) -> dict[str, dict[str, str]]:
    units: dict[str, dict[str, str]] = {}
    for module, edges in graph.items():
        out = units.setdefault(unit(module), {})
        for target, where in edges.items():
            if unit(target) != unit(module):
                out.setdefault(unit(target), where)
    return units


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def explain(cycle: list[str], graph) -> str:
    return "; ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_the_import_graph_is_read():
    # Guards the test itself: a parser that found nothing would find no cycle either.
    units = unit_graph(module_graph())
    assert set(BELOW) <= set(units)
    assert {"models", "weights"} <= set(units["speculative"]) and "distill" in units["training"]
    assert find_cycle({"a": {"b": "x"}, "b": {"a": "y"}}) == ["a", "b", "a"]


def test_no_import_cycle_between_subpackages():
    units = unit_graph(module_graph())
    cycle = find_cycle({u: {t: w for t, w in out.items() if t != "pard_jax"} for u, out in units.items()})
    assert cycle is None, f"import cycle between subpackages: {explain(cycle, units)}"


def test_no_import_cycle_between_modules():
    graph = module_graph()
    # Every module imports the package root first (Python does), so the root's own edges are left out.
    cycle = find_cycle({m: {t: w for t, w in out.items() if t != "pard_jax"} for m, out in graph.items()})
    assert cycle is None, f"import cycle between modules: {explain(cycle, graph)}"


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for u, out in unit_graph(module_graph()).items():
        if u == "pard_jax":
            continue
        allowed = BELOW.get(u, TOP.get(u, set()))
        wrong += [f"{u} imports {t} ({where})" for t, where in out.items()
                  if (t in BELOW or t in TOP) and t not in allowed]
    assert not wrong, "; ".join(wrong)


def test_the_root_stays_a_lazy_facade():
    # `import pard_jax` must not import JAX: the root imports no module of its own at the top (its exports are
    # imported on first use), and modules take from it only what it defines itself (asset_path).
    root = PACKAGE / "__init__.py"
    # ...except libtpu_env, which must run before jax starts a backend and imports only the standard library
    assert [name for name, _ in imports(root)] == ["pard_jax.libtpu_env"]
    assert all(not name.startswith(("pard_jax", "jax")) for name, _ in imports(PACKAGE / "libtpu_env.py"))
    lazy = set(pard_jax._EXPORTS)
    through_root = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "pard_jax" and not node.level:
                through_root += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {a.name}"
                                 for a in node.names if a.name in lazy]
    assert not through_root, f"import these from their own modules, not the package root: {through_root}"
