"""Genotypes: which candidate operation each searchable layer uses.

Two on-disk formats are read:

* **ours** (written by default), versioned and self-describing::

      {"format": "cdnet-reid-genotype", "version": 1, "space": "cdnet",
       "layers": [[3, 5, 1], ...], "ops": [0, ...], "alphas": [[...], ...] | null, "meta": {...}}

  ``space`` is ``"cdnet"`` (entries ``[k1, k2, r]``, 12 candidates) or ``"cnet"`` (``[k1, k2]``,
  6 candidates); ``ops`` are the candidate indices of ``layers`` (redundant, checked on load);
  ``alphas`` are the architecture logits the genotype was derived from (optional); ``meta`` is
  free-form (source, epoch, ...).
* **the authors'** (``{"layers": [...], "alphas1": [...]}``, written as ``json.dumps(indent=4)``
  without a trailing newline), as shipped with the original code.

A genotype is resolved by :func:`resolve_genotype_path`: an absolute path, a path relative to the
config file's folder or the working directory, or a bare name of a shipped genotype
(``cdnet_top2``, ``cnet_top2``) in this package's ``genotypes/`` folder.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...utils.file_io import atomic_write

FORMAT = "cdnet-reid-genotype"
VERSION = 1

#: Candidate operations in the order of the architecture logits' columns, as in the original code:
#: CNet's 6 combined blocks ``[k1, k2]`` and CDNet's 12 combined-depth blocks ``[k1, k2, r]``.
CANDIDATES: Dict[str, List[Tuple[int, ...]]] = {
    "cdnet": [(3, 5, 1), (3, 7, 1), (5, 7, 1), (3, 5, 2), (3, 7, 2), (5, 7, 2),
              (3, 9, 1), (5, 9, 1), (7, 9, 1), (3, 9, 2), (5, 9, 2), (7, 9, 2)],
    "cnet": [(3, 5), (3, 7), (5, 7), (3, 9), (5, 9), (7, 9)],
}

GENOTYPE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "genotypes")


class GenotypeError(ValueError):
    """A genotype file or value that cannot be used."""


def op_name(space: str, entry: Sequence[int]) -> str:
    """``combined3x5-1`` style name of a candidate (the original code's naming)."""
    return f"combined{entry[0]}x{entry[1]}" + (f"-{entry[2]}" if space == "cdnet" else "")


@dataclass
class Genotype:
    space: str
    layers: List[Tuple[int, ...]]
    alphas: Optional[List[List[float]]] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.layers = [tuple(int(k) for k in e) for e in self.layers]
        self.validate()

    @property
    def ops(self) -> List[int]:
        """Candidate index of every layer."""
        return [CANDIDATES[self.space].index(e) for e in self.layers]

    def validate(self, num_layers: Optional[int] = None) -> None:
        """Check the space, every entry against the candidate table, and the alphas' shape."""
        if self.space not in CANDIDATES:
            raise GenotypeError(f"unknown search space {self.space!r}; expected one of {sorted(CANDIDATES)}")
        table = CANDIDATES[self.space]
        for i, e in enumerate(self.layers):
            if e not in table:
                raise GenotypeError(f"layer {i}: {list(e)} is not a {self.space} candidate; valid "
                                    f"entries: {[list(c) for c in table]}")
        if num_layers is not None and len(self.layers) != num_layers:
            raise GenotypeError(f"the genotype has {len(self.layers)} layers but the network has "
                                f"{num_layers} searchable layers (sum of MODEL.BACKBONE.STAGES)")
        if self.alphas is not None:
            if len(self.alphas) != len(self.layers) or any(len(r) != len(table) for r in self.alphas):
                raise GenotypeError(f"alphas must be {len(self.layers)}×{len(table)} for this "
                                    f"{self.space} genotype")

    def to_dict(self) -> Dict[str, Any]:
        """Our format, as plain data (also what checkpoints store)."""
        return {"format": FORMAT, "version": VERSION, "space": self.space,
                "layers": [list(e) for e in self.layers], "ops": self.ops,
                "alphas": self.alphas, "meta": dict(self.meta)}

    def to_authors_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"layers": [list(e) for e in self.layers]}
        if self.alphas is not None:
            d["alphas1"] = self.alphas
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "<dict>") -> "Genotype":
        """Parse our format or the authors' (recognised by its keys)."""
        if not isinstance(d, dict) or "layers" not in d:
            raise GenotypeError(f"{source}: not a genotype (a JSON object with a 'layers' list)")
        layers = d["layers"]
        if not isinstance(layers, list) or not layers or not all(isinstance(e, list) for e in layers):
            raise GenotypeError(f"{source}: 'layers' must be a non-empty list of [k1, k2(, r)] lists")
        if d.get("format") == FORMAT:
            if d.get("version", 0) > VERSION:
                raise GenotypeError(f"{source}: genotype format version {d['version']} is newer than "
                                    f"this code understands ({VERSION}); upgrade cdnet-reid")
            geno = cls(d.get("space", ""), layers, d.get("alphas"), d.get("meta") or {})
            if "ops" in d and list(d["ops"]) != geno.ops:
                raise GenotypeError(f"{source}: 'ops' {d['ops']} disagree with 'layers' {geno.ops}")
            return geno
        lengths = {len(e) for e in layers}
        if lengths not in ({2}, {3}):
            raise GenotypeError(f"{source}: entries must all be [k1, k2] (CNet) or all [k1, k2, r] "
                                f"(CDNet), got {layers}")
        space = "cdnet" if lengths == {3} else "cnet"
        try:
            return cls(space, layers, d.get("alphas1"), {"source_format": "authors"})
        except GenotypeError as e:
            raise GenotypeError(f"{source}: {e}") from None

    @classmethod
    def from_alphas(cls, space: str, alphas: Sequence[Sequence[float]], meta=None) -> "Genotype":
        """Top-1 (argmax, first index on ties) candidate of every row of the logits: the
        authors' derivation rule."""
        table = CANDIDATES[space]
        rows = [[float(v) for v in r] for r in alphas]
        layers = [table[max(range(len(r)), key=lambda j: (r[j], -j))] for r in rows]
        return cls(space, layers, rows, dict(meta or {}))


def resolve_genotype_path(name: str, config_dir: Optional[str] = None) -> str:
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


def shipped_genotypes() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(GENOTYPE_DIR) if f.endswith(".json"))


def load_genotype(name: str, config_dir: Optional[str] = None) -> Genotype:
    """Read a genotype in our format or the authors' (see :func:`resolve_genotype_path`)."""
    path = resolve_genotype_path(name, config_dir)
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"{path}: invalid JSON ({e})") from None
    return Genotype.from_dict(data, source=path)


def _dumps_compact(d: Dict[str, Any]) -> str:
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
