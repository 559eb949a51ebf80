"""The package's dependency graph: no import cycle, and dependencies run one way.

Layers, bottom to top: ``config``, ``utils`` -> ``data``, ``modeling``, ``solver``, ``evaluation`` ->
``engine``, ``export`` -> ``search`` -> ``apps``, ``cli`` (the command-line
applications). A module may import its own layer's packages or lower ones;
the engine and the lower layers never name the search or the search space's building blocks, and the
engine and utils name no config key or parameter of a model, a head or the search either (in code
strings; docstrings and comments may explain).
"""

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "cdnet_reid"

LAYER = {"config": 0, "utils": 0, "data": 1, "modeling": 1, "solver": 1, "evaluation": 1,
         "engine": 2, "export": 2, "search": 3, "integrations": 3, "apps": 4, "cli": 4}
# Within layer 1 the packages are independent of each other, except these edges.
ALLOWED_SIDEWAYS = {("evaluation", "modeling")}  # predictors/fusion use the model contract
FORBIDDEN = {"engine", "data", "evaluation", "utils"}, ("cdnet_reid.search", "cdnet_reid.modeling.space")


def module_name(path: Path) -> str:
    parts = ("cdnet_reid",) + path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every cdnet_reid module ``name`` imports, anywhere in the file (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
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


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``g`` (a list of modules, first == last), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

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


#: Names of a model, a head or the search that the engine and utils must not spell out. Any string
#: holding one of the first group counts; of the second, identifier-like strings (no spaces).
NAMED_ANYWHERE = ("SEARCH.", "SEARCH_", "alpha_entropy", "genotype", "Supernet", "MODEL.HEADS.", "MODEL.BACKBONE.")
NAMED_AS_KEY = re.compile(r"classifier|backbone|\bhead\b|head\.|fcs|arch_|\bSEARCH\b")


def _code_strings(path: Path):
    """``(line, text)`` of every string constant of ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text(), str(path))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def named_components(path: Path) -> list[str]:
    """The strings of ``path`` that name a model's, a head's or the search's keys or parameters."""
    return [f"{path.relative_to(PKG.parent)}:{line}: {text[:70]!r}" for line, text in _code_strings(path)
            if any(w in text for w in NAMED_ANYWHERE) or (" " not in text and NAMED_AS_KEY.search(text))]


def _check_fake_module(tmp_path, relpath: str, text: str, check) -> list[str]:
    """``check(path)`` on a module ``relpath`` of a package written under ``tmp_path``."""
    global PKG
    src = tmp_path / "cdnet_reid" / relpath
    src.parent.mkdir(parents=True)
    src.write_text(text)
    old, PKG = PKG, tmp_path / "cdnet_reid"
    try:
        return check(src)
    finally:
        PKG = old


def test_named_components_detects_model_and_search_strings(tmp_path):
    found = _check_fake_module(tmp_path, "engine/x.py",
                               '"""Docstrings may say SEARCH.MODE and alpha_entropy."""\n'
                               'A = ("SEARCH.", "MODEL.")\nB = f"{1}alpha_entropy/{2}"\nC = "head.fcs."\n'
                               'D = "kept the new classifier"\n', named_components)
    assert sorted(f.split(":")[1] for f in found) == ["2", "3", "4"], found


def test_engine_and_utils_name_no_model_head_or_search_keys():
    bad = [hit for sub in ("engine", "utils") for path in sorted((PKG / sub).rglob("*.py"))
           for hit in named_components(path)]
    assert not bad, "\n".join(bad)


def construction_violations(path: Path) -> list[str]:
    """Where ``path`` departs from the one construction protocol: a ``from_config`` that is not a
    classmethod ``(cls, cfg, ..., **context)`` returning keyword arguments (``-> dict``), a call
    of ``from_config`` outside ``utils.registry.build``, a signature sniffed with
    ``inspect.signature``, or a registry other than ``utils.registry.Registry``."""
    tree = ast.parse(path.read_text(), str(path))
    where = f"{path.relative_to(PKG.parent)}"
    builder = path == PKG / "utils" / "registry.py"
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "from_config":
            args = node.args
            ok = (any(isinstance(d, ast.Name) and d.id == "classmethod" for d in node.decorator_list)
                  and [a.arg for a in args.args[:2]] == ["cls", "cfg"] and args.kwarg is not None
                  and isinstance(node.returns, ast.Name) and node.returns.id == "dict")
            if not ok:
                bad.append(f"{where}:{node.lineno}: from_config must be a classmethod "
                           "(cls, cfg, ..., **context) -> dict")
        elif isinstance(node, ast.Attribute) and node.attr == "from_config" and isinstance(node.ctx, ast.Load):
            if not builder:
                bad.append(f"{where}:{node.lineno}: from_config called outside utils.registry.build")
        elif isinstance(node, ast.Attribute) and node.attr == "signature" and \
                isinstance(node.value, ast.Name) and node.value.id == "inspect":
            bad.append(f"{where}:{node.lineno}: construction by signature sniffing")
        elif isinstance(node, ast.ImportFrom) and node.module == "fvcore.common.registry" and not builder:
            bad.append(f"{where}:{node.lineno}: a registry other than utils.registry.Registry")
    return bad


def test_construction_violations_are_detected(tmp_path):
    found = _check_fake_module(
        tmp_path, "modeling/x.py",
        "import inspect\nfrom fvcore.common.registry import Registry\n"
        "class A:\n    @classmethod\n    def from_config(cls, model, cfg):\n        return cls()\n"
        "class B:\n    @classmethod\n    def from_config(cls, cfg, **context) -> dict:\n        return {}\n"
        "b = B(**B.from_config(None))\nn = inspect.signature(B).parameters\n", construction_violations)
    assert sorted(int(f.split(":")[1]) for f in found) == [2, 5, 11, 12], found


def test_one_construction_protocol():
    bad = [v for path in sorted(PKG.rglob("*.py")) for v in construction_violations(path)]
    assert not bad, "\n".join(bad)
