"""Genotypes: which candidate operation each searchable layer uses.

Two on-disk formats are read:

* **ours** (written by default), versioned and self-describing::

      {"format": "cdnet-reid-genotype", "version": 1, "space": "cdnet",
       "layers": [[3, 5, 1], ...], "ops": [0, ...], "alphas": [[...], ...] | null, "meta": {...}}

  ``space`` is ``"cdnet"`` (entries ``[k1, k2, r]``, 12 candidates) or ``"cnet"`` (``[k1, k2]``,
  6 candidates); ``ops`` are the candidate indices of ``layers`` (redundant, checked on load);
  ``alphas`` are the architecture logits the genotype was derived from (optional); ``meta`` is
  free-form (source, epoch, ...). Optional ``"cost"`` (written only by a search for a budget):
  ``{"kind": "latency" | "macs" | "params", "unit": str, "target": number, "predicted": number,
  "expected": number (optional), "table": str | null, "mode": "max" | "target", "reference": str,
  "fraction": number (both optional)}``: the budget, the cost the search's cost table predicts for
  this genotype's network, E[cost] under softmax(alphas), the table file, the penalty's mode and,
  for a budget given relative to a genotype, that genotype and the fraction of its cost.
* **the authors'** (``{"layers": [...], "alphas1": [...]}``, written as ``json.dumps(indent=4)``
  without a trailing newline), as shipped with the original code.

A genotype is resolved by :func:`resolve_genotype_path`: an absolute path, a path relative to the
config file's folder or the working directory, or a bare name of a shipped genotype
(``cdnet_top2``, ``cnet_top2``) in this package's ``genotypes/`` folder.
"""

import json
import math
import numbers
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...config import ConfigError
from ...utils.file_io import atomic_write

FORMAT = "cdnet-reid-genotype"
VERSION = 1

#: Candidate operations in the order of the architecture logits' columns, as in the original code:
#: CNet's 6 combined blocks ``[k1, k2]`` and CDNet's 12 combined-depth blocks ``[k1, k2, r]``.
CANDIDATES: dict[str, list[tuple[int, ...]]] = {
    "cdnet": [(3, 5, 1), (3, 7, 1), (5, 7, 1), (3, 5, 2), (3, 7, 2), (5, 7, 2),
              (3, 9, 1), (5, 9, 1), (7, 9, 1), (3, 9, 2), (5, 9, 2), (7, 9, 2)],
    "cnet": [(3, 5), (3, 7), (5, 7), (3, 9), (5, 9), (7, 9)],
}

GENOTYPE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "genotypes")


class GenotypeError(ConfigError):
    """A genotype file or value that cannot be used. The message names the file (or "the
    checkpoint"), the key path inside it (``layers[2][0]``, ``meta.epoch``) and the value."""


#: Deepest nesting accepted anywhere in a genotype (``meta`` is free-form; the rest is 2 deep).
MAX_DEPTH = 32
#: Largest genotype file read (the shipped ones are about 2 kB).
MAX_BYTES = 16 * 1024 * 1024
_OURS_KEYS = ("format", "version", "space", "layers", "ops", "alphas", "meta", "cost")
_AUTHORS_KEYS = ("layers", "alphas1")


def _show(value: Any) -> str:
    """``repr`` of a value for a one-line message, shortened."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _integer(value: Any, key: str) -> int:
    if not _is_int(value):
        raise GenotypeError(f"{key}: {_show(value)} is not an integer")
    return int(value)


def _finite(value: Any, key: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise GenotypeError(f"{key}: {_show(value)} is not a number")
    if not math.isfinite(value):
        raise GenotypeError(f"{key}: {_show(value)} is not a finite number")
    return float(value)


def _list(value: Any, key: str, what: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"{key}: {_show(value)} is not a list of {what}")
    return list(value)


def _check_plain_data(value: Any, key: str, depth: int = 0) -> None:
    """``value`` is JSON data (objects with string keys, lists, strings, finite numbers, booleans,
    null), at most :data:`MAX_DEPTH` deep: what a checkpoint stores and ``json`` writes back."""
    if depth > MAX_DEPTH:
        raise GenotypeError(f"{key}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise GenotypeError(f"{key}: key {_show(k)} is not a string")
            _check_plain_data(v, f"{key}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain_data(v, f"{key}[{i}]", depth + 1)
    elif isinstance(value, float):
        _finite(value, key)
    elif not (value is None or isinstance(value, (str, bool, int))):
        raise GenotypeError(f"{key}: {_show(value)} is not JSON data")


def op_name(space: str, entry: Sequence[int]) -> str:
    """``combined3x5-1`` style name of a candidate (the original code's naming)."""
    return f"combined{entry[0]}x{entry[1]}" + (f"-{entry[2]}" if space == "cdnet" else "")


@dataclass
class Genotype:
    space: str
    layers: list[tuple[int, ...]]
    alphas: list[list[float]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] | None = None

    def __post_init__(self):
        """Type-checks every field (integers stay integers: ``3.9`` is refused, not truncated;
        alphas are finite numbers; ``meta`` is a mapping of JSON data), then :meth:`validate`."""
        layers = _list(self.layers, "layers", "[k1, k2(, r)] entries")
        if not layers:
            raise GenotypeError("layers: the list is empty")
        self.layers = [tuple(_integer(k, f"layers[{i}][{j}]")
                             for j, k in enumerate(_list(e, f"layers[{i}]", "integers")))
                       for i, e in enumerate(layers)]
        if self.alphas is not None:
            self.alphas = [[_finite(v, f"alphas[{i}][{j}]") for j, v in enumerate(_list(r, f"alphas[{i}]", "numbers"))]
                           for i, r in enumerate(_list(self.alphas, "alphas", "rows"))]
        if not isinstance(self.meta, dict):
            raise GenotypeError(f"meta: {_show(self.meta)} is not a mapping (a JSON object)")
        _check_plain_data(self.meta, "meta")
        self.validate()

    @property
    def ops(self) -> list[int]:
        """Candidate index of every layer."""
        return [CANDIDATES[self.space].index(e) for e in self.layers]

    def validate(self, num_layers: int | None = None) -> None:
        """Check the space, every entry against the candidate table, and the alphas' shape."""
        if not isinstance(self.space, str) or self.space not in CANDIDATES:
            raise GenotypeError(f"space: {_show(self.space)} is not a search space; expected one of "
                                f"{sorted(CANDIDATES)}")
        table = CANDIDATES[self.space]
        for i, e in enumerate(self.layers):
            if e not in table:
                raise GenotypeError(f"layers[{i}]: {list(e)} is not a {self.space} candidate; valid "
                                    f"entries: {[list(c) for c in table]}")
        if num_layers is not None and len(self.layers) != num_layers:
            raise GenotypeError(f"the genotype has {len(self.layers)} layers but the network has "
                                f"{num_layers} searchable layers (sum of MODEL.BACKBONE.STAGES)")
        if self.cost is not None:
            validate_cost_record(self.cost)
        if self.alphas is not None:
            if len(self.alphas) != len(self.layers) or any(len(r) != len(table) for r in self.alphas):
                raise GenotypeError(f"alphas must be {len(self.layers)}×{len(table)} for this "
                                    f"{self.space} genotype")

    def to_dict(self) -> dict[str, Any]:
        """Our format, as plain data (also what checkpoints store)."""
        d = {"format": FORMAT, "version": VERSION, "space": self.space,
             "layers": [list(e) for e in self.layers], "ops": self.ops,
             "alphas": self.alphas, "meta": dict(self.meta)}
        if self.cost is not None:
            d["cost"] = dict(self.cost)
        return d

    def to_authors_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"layers": [list(e) for e in self.layers]}
        if self.alphas is not None:
            d["alphas1"] = self.alphas
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> "Genotype":
        """Parse our format or the authors' (recognised by its keys), checking every key and value;
        a :class:`GenotypeError` names ``source``, the key path and the value."""
        try:
            return cls._from_dict(d)
        except GenotypeError as e:
            raise GenotypeError(f"{source}: {e}") from None

    @classmethod
    def _from_dict(cls, d: Any) -> "Genotype":
        if not isinstance(d, dict) or "layers" not in d:
            raise GenotypeError("not a genotype (a JSON object with a 'layers' list)")
        ours = "format" in d
        known = _OURS_KEYS if ours else _AUTHORS_KEYS
        unknown = [k for k in d if k not in known]
        if unknown:
            if ours:
                raise GenotypeError(f"unknown key {_show(unknown[0])}; our format has the keys {list(known)}")
            raise GenotypeError(f"unknown key {_show(unknown[0])}; the authors' format has the keys "
                                f"{list(known)}, ours starts with \"format\": \"{FORMAT}\"")
        if ours:
            if d["format"] != FORMAT:
                raise GenotypeError(f"format: {_show(d['format'])} is not {FORMAT!r}")
            for key in ("version", "space"):
                if key not in d:
                    raise GenotypeError(f"{key}: missing (our format has the keys {list(_OURS_KEYS)})")
            version = _integer(d["version"], "version")
            if version > VERSION:
                raise GenotypeError(f"version: genotype format version {version} is newer than "
                                    f"this code understands ({VERSION}); upgrade cdnet-reid")
            if version < 1:
                raise GenotypeError(f"version: {version} is not a version (1 or more)")
            meta = d.get("meta")
            geno = cls(d.get("space"), d["layers"], d.get("alphas"), {} if meta is None else meta,
                       d.get("cost"))
            if "ops" in d:
                ops = [_integer(v, f"ops[{i}]") for i, v in enumerate(_list(d["ops"], "ops", "integers"))]
                if ops != geno.ops:
                    raise GenotypeError(f"ops: {ops} disagree with the layers' candidates {geno.ops}")
            return geno
        layers = _list(d["layers"], "layers", "[k1, k2(, r)] entries")
        lengths = {len(e) if isinstance(e, (list, tuple)) else None for e in layers}
        if lengths not in ({2}, {3}):
            raise GenotypeError(f"layers: entries must all be [k1, k2] (CNet) or all [k1, k2, r] "
                                f"(CDNet), got {_show(layers)}")
        space = "cdnet" if lengths == {3} else "cnet"
        return cls(space, layers, d.get("alphas1"), {"source_format": "authors"})

    @classmethod
    def from_alphas(cls, space: str, alphas: Sequence[Sequence[float]], meta=None) -> "Genotype":
        """Top-1 (argmax, first index on ties) candidate of every row of the logits: the
        authors' derivation rule."""
        table = CANDIDATES[space]
        rows = [[float(v) for v in r] for r in alphas]
        layers = [table[max(range(len(r)), key=lambda j: (r[j], -j))] for r in rows]
        return cls(space, layers, rows, dict(meta or {}))


#: Kinds of the optional ``cost`` record.
COST_KINDS = ("latency", "macs", "params")


def random_genotype(space: str, seed: int, num_layers: int = 6) -> Genotype:
    """``num_layers`` candidates of ``space`` drawn uniformly and independently with ``seed``."""
    if space not in CANDIDATES:
        raise ValueError(f"unknown space {space!r}; expected one of {sorted(CANDIDATES)}")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    table = CANDIDATES[space]
    rng = random.Random(seed)
    ops = [rng.randrange(len(table)) for _ in range(num_layers)]
    return Genotype(space, [table[i] for i in ops],
                    meta={"source": "random", "space": space, "seed": seed,
                          "rule": f"uniform over the {len(table)} candidates, independently per layer "
                                  "(random.Random(seed).randrange)"})


def validate_cost_record(cost: Any) -> None:
    """Check the optional ``cost`` record of a genotype (see the module docstring)."""
    if not isinstance(cost, dict) or cost.get("kind") not in COST_KINDS:
        raise GenotypeError(f"cost: must be an object with 'kind' one of {COST_KINDS}, got {_show(cost)}")
    for key in ("target", "predicted") + (("expected",) if "expected" in cost else ()):
        v = cost.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            raise GenotypeError(f"cost.{key}: {_show(v)} is not a finite number >= 0")
    unknown = [k for k in cost if k not in ("kind", "unit", "target", "predicted", "expected", "table", "mode",
                                            "reference", "fraction")]
    if unknown:
        raise GenotypeError(f"cost: unknown key {_show(unknown[0])}")
    if cost.get("mode", "max") not in ("max", "target"):
        raise GenotypeError(f"cost.mode: {_show(cost.get('mode'))} is not 'max' or 'target'")
    fraction = cost.get("fraction")
    if ("reference" in cost or "fraction" in cost) and not (
            isinstance(cost.get("reference"), str) and isinstance(fraction, (int, float))
            and not isinstance(fraction, bool) and 0 < fraction < math.inf):
        raise GenotypeError(f"cost: 'reference' must be a genotype name or file and 'fraction' a number > 0, "
                            f"got {_show(cost)}")
    if not isinstance(cost.get("table"), (str, type(None))) or not isinstance(cost.get("unit", ""), str):
        raise GenotypeError(f"cost: 'table' and 'unit' must be strings, got {_show(cost)}")


def resolve_genotype_path(name: str, config_dir: str | None = None) -> str:
    """The file a ``MODEL.BACKBONE.GENOTYPE`` value refers to (see the module docstring)."""
    if not name:
        raise GenotypeError("MODEL.BACKBONE.GENOTYPE is empty: give a shipped name "
                            f"({', '.join(shipped_genotypes())}) or a path to a genotype JSON file")
    candidates = []
    if os.path.isabs(name):
        candidates.append(name)
    else:
        if config_dir:
            candidates.append(os.path.join(config_dir, name))
        candidates.append(os.path.abspath(name))
        stem = name[:-5] if name.endswith(".json") else name
        candidates.append(os.path.join(GENOTYPE_DIR, stem + ".json"))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise GenotypeError(f"genotype {name!r} not found; looked at {candidates}. Shipped genotypes: "
                        f"{shipped_genotypes()}")


def shipped_genotypes() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(GENOTYPE_DIR) if f.endswith(".json"))


def load_genotype(name: str, config_dir: str | None = None) -> Genotype:
    """Read a genotype in our format or the authors' (see :func:`resolve_genotype_path`), checked
    completely: any problem is a :class:`GenotypeError` naming the file, the key and the value."""
    path = resolve_genotype_path(name, config_dir)
    return Genotype.from_dict(_read_json(path), source=path)


def _read_json(path: str) -> Any:
    """The JSON data of ``path``; unreadable, non-UTF-8, oversized, too deep or invalid JSON is a
    :class:`GenotypeError` naming the file. (NaN and Infinity parse here and are refused with their
    key path by :class:`Genotype`.)"""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise GenotypeError(f"{path}: cannot read the genotype file: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise GenotypeError(f"{path}: larger than {MAX_BYTES // 2 ** 20} MiB, not a genotype file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GenotypeError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"{path}: invalid JSON ({e})") from None
    except RecursionError:
        raise GenotypeError(f"{path}: nested too deeply to be a genotype") from None
    except ValueError as e:  # an integer literal beyond Python's int/str conversion limit
        raise GenotypeError(f"{path}: a number too large to read ({str(e).split(':')[0]})") from None


def _dumps_compact(d: dict[str, Any]) -> str:
    """JSON with one top-level key per line and each row of a matrix on one line (readable diffs)."""
    def value(v):
        if isinstance(v, list) and v and all(isinstance(r, list) for r in v):
            return "[\n" + ",\n".join("    " + json.dumps(r) for r in v) + "\n  ]"
        return json.dumps(v)
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {value(v)}" for k, v in d.items()) + "\n}\n"


def save_genotype(geno: Genotype, path: str, fmt: str = "ours") -> None:
    """Write ``geno`` as our format (``fmt="ours"``) or the authors' (``fmt="authors"``: byte-compatible
    with the original files, ``json.dumps(indent=4)`` and no trailing newline). Atomic."""
    if fmt == "ours":
        text = _dumps_compact(geno.to_dict())
    elif fmt == "authors":
        text = json.dumps(geno.to_authors_dict(), indent=4)
    else:
        raise ValueError(f"fmt must be 'ours' or 'authors', got {fmt!r}")
    with atomic_write(path) as f:
        f.write(text)
