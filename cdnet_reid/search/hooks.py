"""Hooks of the search: writing the derived genotype, its entropy, and the picture of the search."""

import dataclasses
import logging
import math
import os

import torch
from tabulate import tabulate

from ..engine.train_loop import HookBase
from ..modeling.space.genotype import CANDIDATES, op_name, save_genotype
from ..utils import comm

logger = logging.getLogger(__name__)

#: The training-curves panel of the scalars :class:`GenotypeHook` publishes (``{title: prefix}``).
CURVE_PANELS = {"α entropy (nats)": "alpha_entropy/"}


class GenotypeHook(HookBase):
    """Every ``period`` epochs and after the last one: derive the genotype (argmax per layer, the
    authors' rule), write ``genotype_epoch{E:04d}.json`` (and ``genotype_final.json`` at the end)
    to ``output_dir`` with the logits and per-layer probabilities, publish the entropy of
    softmax(α) of every layer (``alpha_entropy/layer{i}``) and its mean over the layers
    (``alpha_entropy/mean``) after every epoch, and log a table of the current choice per layer.
    After training (``plot=True``), draw the search into ``output_dir/search_alphas.png``
    (:func:`.plot.plot_search`); a failing picture is a warning, never a failed search.

    The final-epoch genotype is the result of the search: no genotype is selected on test metrics.
    With ``cost`` (a search for a budget, :class:`.cost.CostTerm`) every genotype file records the
    budget and the cost predicted for the genotype (``cost``).
    """

    def __init__(self, supernet, output_dir: str, period: int, *, authors_format: bool = False,
                 meta: dict = None, plot: bool = True, cost=None):
        self.supernet = supernet
        self.output_dir = output_dir
        self.period = period
        self.authors_format = authors_format
        self.meta = dict(meta or {})
        self.plot = plot
        self.cost = cost  # a search for a budget: its .record(genotype, alphas) goes into the file

    def after_epoch(self):
        epoch = self.trainer.epoch + 1
        last = self.trainer.iter + 1 >= self.trainer.max_iter
        probs = self.supernet.probabilities()
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        for layer, h in enumerate(entropy.tolist()):
            self.trainer.storage.put_scalar(f"alpha_entropy/layer{layer}", h, smoothing_hint=False)
        self.trainer.storage.put_scalar("alpha_entropy/mean", float(entropy.mean()), smoothing_hint=False)
        if not (last or (self.period > 0 and epoch % self.period == 0)):
            return
        geno = dataclasses.replace(self.supernet.genotype, meta={
            **self.meta, "epoch": epoch, "probabilities": [[round(v, 6) for v in r] for r in probs.tolist()]})
        if self.cost is not None:
            geno = dataclasses.replace(geno, cost=self.cost.record(geno, self.supernet.arch_parameters()[0]))
        if comm.is_main_process():
            names = [f"genotype_epoch{epoch:04d}"] + (["genotype_final"] if last else [])
            for name in names:
                save_genotype(geno, os.path.join(self.output_dir, name + ".json"))
                if self.authors_format:
                    save_genotype(geno, os.path.join(self.output_dir, name + "_authors.json"), fmt="authors")
            logger.info("Genotype after epoch %d (written to %s), mean entropy %.4f of ln %d = %.4f:\n%s",
                        epoch, os.path.join(self.output_dir, names[-1] + ".json"), float(entropy.mean()),
                        probs.shape[1], math.log(probs.shape[1]), self.table(probs, entropy))

    def after_train(self):
        if not (self.plot and comm.is_main_process()) or self.trainer.iter + 1 < self.trainer.max_iter:
            return
        try:
            from .plot import plot_search

            path = plot_search(self.output_dir)
            logger.info("Picture of the search written to %s", path)
        except Exception as e:  # noqa: BLE001 - a picture must never fail the search
            logger.warning("Could not draw the search into %s: %s: %s", self.output_dir, type(e).__name__, e)

    def table(self, probs: torch.Tensor, entropy: torch.Tensor) -> str:
        """The per-layer choice table of softmax(α) ``probs`` (L x N) and their ``entropy`` (L)."""
        space = self.supernet.space
        rows = []
        for layer, p in enumerate(probs):
            top = torch.topk(p, 2)
            best, second = top.indices.tolist()
            rows.append([layer, best, op_name(space, CANDIDATES[space][best]), f"{top.values[0]:.4f}",
                         f"{op_name(space, CANDIDATES[space][second])} ({top.values[1]:.4f})",
                         f"{entropy[layer]:.4f}"])
        return tabulate(rows, headers=["layer", "op", "name", "p", "runner-up (p)", "entropy"], tablefmt="pipe")
