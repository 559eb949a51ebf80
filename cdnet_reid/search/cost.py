"""A search for a budget: the expected-cost penalty of the architecture step (``SEARCH.COST``).

The expected cost of the network under the architecture distribution is, as in ProxylessNAS
(Cai et al., ICLR 2019, Sec. 3.3, "E[LAT] = sum_j sum_i p_i^j F(o_i^j)")::

    E[cost] = fixed + sum over layers l of  softmax(alpha_l) . cost_l

with ``cost_l`` the costs of layer l's candidates in a cost table (:mod:`.cost_table`) and
``fixed`` the non-searchable parts (stem, DownSamples, head). In top-k mode only k candidates run
in a step, but the penalty uses the same expectation over softmax(alpha) (the distribution the
derived genotype, its argmax, is taken from), so it is the same term in both modes.

The architecture loss becomes::

    L_arch = CE_arch + WEIGHT * max(0, E[cost] / TARGET - 1)

ProxylessNAS adds ``lambda * E[LAT]`` (no target: it keeps pushing the cost down whatever the
budget); MnasNet (Tan et al., CVPR 2019, Sec. 3, the hard-constraint setting alpha = 0,
beta = -1) penalises the cost only above the target T. This is the additive form of that
hard constraint on ProxylessNAS' expectation: zero below the budget, so the accuracy term alone
decides among the architectures that fit it, and a gradient that pushes softmax(alpha) toward
cheaper candidates, in proportion to how much cheaper, as long as the budget is exceeded. We
chose it over FBNet's multiplicative ``CE * a * log(LAT)^b`` (Wu et al., CVPR 2019, eq. 2),
which has no target either (its a and b must be tuned per budget until the search lands under
it), and over MnasNet's soft ``(LAT/T)^w``, which also rewards going below T. Since the term
depends on alpha only, its gradient is added to the architecture gradient (first-order or
unrolled) as it is.

Config (:func:`add_search_cost_config`), off by default so the paper's search is unchanged:

* ``SEARCH.COST.KIND``: ``""`` (off), ``"latency"``, ``"macs"`` or ``"params"``;
* ``SEARCH.COST.TABLE``: a cost table file (``cdnet-reid latency-table``); required for latency;
  for macs/params, empty computes the table from the search's own network;
* ``SEARCH.COST.TARGET``: the whole network's budget in the kind's unit: milliseconds per image
  at the table's batch size, MACs (of convolutions and linear layers), or parameters; with
  ``SEARCH.COST.REFERENCE`` set, a fraction of that genotype's cost instead;
* ``SEARCH.COST.REFERENCE``: ``""`` (TARGET is absolute) or a genotype (a shipped name such as
  ``cdnet_top2``, or a file): TARGET x the cost the table predicts for it is the budget. A budget
  in milliseconds then holds on a machine whose speed drifts, since the table and the reference
  are timed together (a table measured at 8.3 ms for the paper's network one minute and 5.9 ms the
  next still puts "70 % of it" at the same genotypes);
* ``SEARCH.COST.WEIGHT``: lambda above;
* ``SEARCH.COST.MODE``: ``"max"`` (the hinge above: a budget not to exceed) or ``"target"``
  (``WEIGHT * |E[cost] / TARGET - 1|``: the budget is also to be used, in the spirit of MnasNet's
  soft constraint, which rewards a network below T as it penalises one above: a search whose
  accuracy term does not pull toward dearer candidates would otherwise settle well below it).
"""

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..config import CfgNode, ConfigError
from ..modeling.space.genotype import Genotype, load_genotype
from .cost_table import KINDS, CostTableError, build_cost_table, cost_matrix, cost_range, genotype_cost, load_cost_table

logger = logging.getLogger(__name__)


def add_search_cost_config(cfg: CfgNode) -> None:
    """Add the ``SEARCH.COST`` keys (documented here) to ``cfg``, which has a ``SEARCH`` section."""
    if "COST" in cfg.SEARCH:
        return
    cfg.SEARCH.COST = CfgNode()
    # "" (off: the paper's search), "latency", "macs" or "params": the cost whose expectation
    # under softmax(alpha) is penalised above SEARCH.COST.TARGET in the architecture step.
    cfg.SEARCH.COST.KIND = ""
    # Cost table JSON (cdnet-reid latency-table): per layer and candidate latency / MACs / params.
    # Required for "latency"; for "macs"/"params" empty means: computed from the search's network.
    cfg.SEARCH.COST.TABLE = ""
    # Budget of the whole network in the kind's unit: ms per image at the table's batch size,
    # MACs (convolutions and linear layers), or parameters (of the modules run in eval mode).
    cfg.SEARCH.COST.TARGET = 0.0
    # lambda of the penalty lambda * max(0, E[cost] / TARGET - 1). With 1.0 the accuracy term
    # outweighs it in a tiny search (E[cost] barely moves); with 10 E[cost] settles at the target.
    cfg.SEARCH.COST.WEIGHT = 10.0
    # "max": penalise E[cost] above TARGET only (a ceiling); "target": penalise the distance to
    # TARGET on both sides (use the budget).
    cfg.SEARCH.COST.MODE = "max"
    # "" (TARGET is absolute) or a genotype (name or file): TARGET is then a fraction of the cost
    # the table predicts for it (e.g. REFERENCE cdnet_top2, TARGET 0.7: 70 % of the paper's network).
    cfg.SEARCH.COST.REFERENCE = ""


def check_cost_config(cfg: CfgNode) -> str | None:
    """The cost kind of ``cfg.SEARCH.COST`` (None when off); :class:`ConfigError` on a
    contradiction or a bad value."""
    c = cfg.SEARCH.COST
    if c.KIND == "":
        for key in ("TABLE", "TARGET", "REFERENCE"):
            if c[key]:
                raise ConfigError(f"SEARCH.COST.KIND is empty (no cost term) but SEARCH.COST.{key} is set: set "
                                  f"SEARCH.COST.KIND to one of {list(KINDS)} or leave it unset")
        return None
    if c.KIND not in KINDS:
        raise ConfigError(f"SEARCH.COST.KIND must be '' or one of {list(KINDS)}, got {c.KIND!r}")
    if not c.TARGET > 0:
        unit = f"a fraction of {c.REFERENCE}'s cost" if c.REFERENCE else f"{KINDS[c.KIND][1]} of the whole network"
        raise ConfigError(f"SEARCH.COST.TARGET must be > 0 ({unit}) with SEARCH.COST.KIND {c.KIND}, got {c.TARGET}")
    if not c.WEIGHT > 0:
        raise ConfigError(f"SEARCH.COST.WEIGHT must be > 0, got {c.WEIGHT}")
    if c.MODE not in MODES:
        raise ConfigError(f"SEARCH.COST.MODE must be one of {list(MODES)}, got {c.MODE!r}")
    if c.KIND == "latency" and not c.TABLE:
        raise ConfigError("SEARCH.COST.KIND latency needs SEARCH.COST.TABLE (build one with "
                          "cdnet-reid latency-table on the target machine)")
    return c.KIND


#: SEARCH.COST.MODE values: a ceiling, or a target on both sides.
MODES = ("max", "target")


class CostTerm(nn.Module):
    """``weight * max(0, E[cost] / target - 1)`` (``mode`` "max") or ``weight * |E[cost] / target
    - 1|`` ("target") of the architecture logits (see the module docstring). ``costs`` (L x N) are
    the per-layer candidate costs, ``fixed`` the rest."""

    def __init__(self, kind: str, fixed: float, costs: Sequence[Sequence[float]], target: float,
                 weight: float, table: str = "", space: str = "", mode: str = "max",
                 reference: tuple[str, float] | None = None):
        super().__init__()
        self.reference = reference  # (genotype, fraction) when target = fraction x its cost
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.kind, self.unit = kind, KINDS[kind][1]
        self.fixed, self.target, self.weight = float(fixed), float(target), float(weight)
        self.table, self.space = table, space
        self.register_buffer("costs", torch.tensor(costs, dtype=torch.float64), persistent=False)

    def expected(self, alphas: Tensor) -> Tensor:
        """E[cost] under softmax(alphas) (alphas: L x N)."""
        if alphas.shape != self.costs.shape:
            raise ValueError(f"the cost table has {tuple(self.costs.shape)} layers x candidates, the "
                             f"architecture logits are {tuple(alphas.shape)}")
        p = torch.softmax(alphas, dim=-1)
        return self.fixed + (p * self.costs.to(p)).sum()

    def forward(self, alphas: Tensor) -> Tensor:
        """The penalty."""
        excess = self.expected(alphas) / self.target - 1.0
        return self.weight * (excess.abs() if self.mode == "target" else torch.relu(excess))

    def add_to_grads(self, grads: list[Tensor], alphas: Sequence[Tensor], losses: dict[str, Tensor],
                     storage=None) -> list[Tensor]:
        """``grads`` (of the architecture loss w.r.t. ``alphas``) plus the penalty's gradient; the
        penalty goes into ``losses`` as ``loss_cost`` and E[cost] into ``storage``
        (``arch/cost_expected``, in the kind's unit)."""
        if len(alphas) != 1:
            raise ValueError(f"the cost term needs one logit matrix, got {len(alphas)}")
        alpha = alphas[0]
        with torch.enable_grad():
            penalty = self(alpha)
            (g,) = torch.autograd.grad(penalty, [alpha])
        losses["loss_cost"] = penalty.detach().to(alpha.dtype)
        if storage is not None:
            storage.put_scalar("arch/cost_expected", float(self.expected(alpha.detach())), smoothing_hint=False)
        return [grads[0] + g.to(grads[0].dtype)] + list(grads[1:])

    def record(self, genotype: Genotype, alphas: Tensor | None = None) -> dict[str, Any]:
        """The ``cost`` entry of a genotype file: kind, unit, target, the cost the table predicts
        for ``genotype`` (its network: fixed + its candidates) and E[cost] under ``alphas``."""
        fixed = self.fixed
        predicted = fixed + sum(float(self.costs[l, j]) for l, j in enumerate(genotype.ops))
        out = {"kind": self.kind, "unit": self.unit, "target": self.target, "predicted": predicted,
               "table": self.table or None, "mode": self.mode}
        if self.reference is not None:
            out["reference"], out["fraction"] = self.reference
        if alphas is not None:
            out["expected"] = float(self.expected(alphas.detach().double().cpu()))
        return out


def build_cost_term(cfg: CfgNode, supernet) -> CostTerm | None:
    """The :class:`CostTerm` of ``cfg.SEARCH.COST`` for ``supernet`` (None when off)."""
    kind = check_cost_config(cfg)
    if kind is None:
        return None
    c = cfg.SEARCH.COST
    if c.TABLE:
        table = load_cost_table(c.TABLE, kind)
        source = c.TABLE
    else:
        logger.info("SEARCH.COST.TABLE is empty: computing the %s of every candidate from the search's network", kind)
        table = build_cost_table(cfg, measure_latency=False)
        source = ""
    num_layers, num_cands = tuple(supernet.arch_parameters()[0].shape)
    if table["space"] != supernet.space or len(table["layers"]) != num_layers:
        raise CostTableError(f"cost table {c.TABLE}: it is for {len(table['layers'])} {table['space']} layers, "
                             f"the supernet has {num_layers} {supernet.space} layers (SEARCH.COST.TABLE)")
    if c.TABLE and (list(table.get("input_size") or []) != list(cfg.INPUT.SIZE_TEST)
                    or table.get("width_mult") != cfg.MODEL.BACKBONE.WIDTH_MULT):
        logger.info("The cost table %s was measured at input %s and width %s; the search runs at %s and %s "
                    "(the budget is that of the table's network)", c.TABLE, table.get("input_size"),
                    table.get("width_mult"), list(cfg.INPUT.SIZE_TEST), cfg.MODEL.BACKBONE.WIDTH_MULT)
    fixed, costs = cost_matrix(table, kind)
    target, reference = c.TARGET, None
    if c.REFERENCE:
        ref = load_genotype(c.REFERENCE)  # GenotypeError (a ConfigError) names a bad name or file
        if ref.space != table["space"] or len(ref.layers) != num_layers:
            raise ConfigError(f"SEARCH.COST.REFERENCE {c.REFERENCE}: a {len(ref.layers)}-layer {ref.space} genotype; "
                              f"the search is over {num_layers} {table['space']} layers")
        ref_cost = genotype_cost(table, ref, kind)
        target, reference = c.TARGET * ref_cost, (c.REFERENCE, float(c.TARGET))
        logger.info("SEARCH.COST.TARGET %g of SEARCH.COST.REFERENCE %s (%g %s by the table): a budget of %g %s",
                    c.TARGET, c.REFERENCE, ref_cost, KINDS[kind][1], target, KINDS[kind][1])
    term = CostTerm(kind, fixed, costs, target, c.WEIGHT, table=source, space=table["space"], mode=c.MODE,
                    reference=reference)
    lo, hi = cost_range(table, kind)
    logger.info("Search for a budget: %s %s %g %s (the table's networks range from %g to %g); penalty "
                "%g * %s", kind, "<=" if c.MODE == "max" else "~", target, term.unit, lo, hi, c.WEIGHT,
                "max(0, E[cost]/target - 1)" if c.MODE == "max" else "|E[cost]/target - 1|")
    if target < lo:
        given, floor = "", ""
        if reference is not None:
            given = f" x {c.REFERENCE} ({target / c.TARGET:g} {term.unit}) = {target:g}"
            floor = f" = {lo / (target / c.TARGET):.3f} x {c.REFERENCE}"
        raise ConfigError(f"SEARCH.COST.TARGET {c.TARGET:g}{given} {term.unit} is below the cheapest network of "
                          f"the space ({lo:g}{floor}): no genotype can meet it")
    return term

