"""The package's dependency graph: no import cycle, and dependencies run one way.

Layers, bottom to top: ``config``, ``utils`` -> ``data``, ``modeling``, ``solver``, ``evaluation`` ->
``engine``, ``export`` -> ``search`` -> ``apps``, ``cli`` (the command-line
applications). A module may import its own layer's packages or lower ones;
the engine and the lower layers never name the search or the CDNet building blocks.
"""

import ast
from pathlib import Path
from typing import Dict, List, Set

PKG = Path(__file__).resolve().parents[1] / "cdnet_reid"

LAYER = {"config": 0, "utils": 0, "data": 1, "modeling": 1, "solver": 1, "evaluation": 1,
         "engine": 2, "export": 2, "search": 3, "integrations": 3, "apps": 4, "cli": 4}
# Within layer 1 the packages are independent of each other, except these edges.
ALLOWED_SIDEWAYS = {("evaluation", "modeling"),  # predictors/fusion use the model contract
                    ("export", "engine")}  # the exported files' runtimes extend DefaultPredictor
FORBIDDEN = {"engine", "data", "evaluation", "utils"}, ("cdnet_reid.search", "cdnet_reid.modeling.cdnet")


def module_name(path: Path) -> str:
    parts = ("cdnet_reid",) + path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> Dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """Every cdnet_reid module ``name`` imports, anywhere in the file (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import submodule" depends on the submodule, not on pkg's __init__
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def graph() -> Dict[str, Set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(g: Dict[str, Set[str]]) -> List[str]:
    """One import cycle of ``g`` (a list of modules, first == last), or []."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return []

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return []


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_find_cycle_detects_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path):
    modules = all_modules()
    deps = imports_of("cdnet_reid.engine.trainer", modules["cdnet_reid.engine.trainer"], modules)
    assert {"cdnet_reid.engine.hooks", "cdnet_reid.engine.train_loop", "cdnet_reid.data"} <= deps


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_dependencies_run_one_way():
    bad = []
    for module, deps in graph().items():
        src = _subpackage(module)
        for dep in deps:
            dst = _subpackage(dep)
            if src not in LAYER or dst not in LAYER or src == dst:
                continue
            if LAYER[dst] > LAYER[src] or (LAYER[dst] == LAYER[src] and (src, dst) not in ALLOWED_SIDEWAYS):
                bad.append(f"{module} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_engine_and_lower_layers_never_name_search_or_cdnet():
    lower, forbidden = FORBIDDEN
    bad = [f"{m} imports {d}" for m, deps in graph().items() if _subpackage(m) in lower
           for d in deps if d.startswith(forbidden)]
    assert not bad, "\n".join(sorted(bad))
