"""Hooks of the search: writing the derived genotype."""

import logging
import os

import torch
from tabulate import tabulate

from ..engine.train_loop import HookBase
from ..modeling.cdnet.genotype import CANDIDATES, op_name, save_genotype
from ..utils import comm

logger = logging.getLogger(__name__)


class GenotypeHook(HookBase):
    """Every ``period`` epochs and after the last one: derive the genotype (argmax per layer, the
    authors' rule), write ``genotype_epoch{E:04d}.json`` (and ``genotype_final.json`` at the end)
    to ``output_dir`` with the logits and per-layer probabilities, publish the per-layer entropy
    of softmax(α), and log a table of the current choice per layer.

    The final-epoch genotype is the result of the search: no genotype is selected on test metrics.
    """

    def __init__(self, supernet, output_dir: str, period: int, *, authors_format: bool = False,
                 meta: dict = None):
        self.supernet = supernet
        self.output_dir = output_dir
        self.period = period
        self.authors_format = authors_format
        self.meta = dict(meta or {})

    def after_epoch(self):
        epoch = self.trainer.epoch + 1
        last = self.trainer.iter + 1 >= self.trainer.max_iter
        probs = self.supernet.probabilities()
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        for layer, h in enumerate(entropy.tolist()):
            self.trainer.storage.put_scalar(f"alpha_entropy/layer{layer}", h, smoothing_hint=False)
        if not (last or (self.period > 0 and epoch % self.period == 0)):
            return
        geno = self.supernet.genotype(meta={**self.meta, "epoch": epoch,
                                            "probabilities": [[round(v, 6) for v in r] for r in probs.tolist()]})
        if comm.is_main_process():
            names = [f"genotype_epoch{epoch:04d}"] + (["genotype_final"] if last else [])
            for name in names:
                save_genotype(geno, os.path.join(self.output_dir, name + ".json"))
                if self.authors_format:
                    save_genotype(geno, os.path.join(self.output_dir, name + "_authors.json"), fmt="authors")
            logger.info("Genotype after epoch %d (written to %s):\n%s", epoch,
                        os.path.join(self.output_dir, names[-1] + ".json"), self.table(probs))

    def table(self, probs: torch.Tensor) -> str:
        space = self.supernet.space
        rows = []
        for layer, p in enumerate(probs):
            top = torch.topk(p, 2)
            best, second = top.indices.tolist()
            rows.append([layer, best, op_name(space, CANDIDATES[space][best]), f"{top.values[0]:.4f}",
                         f"{op_name(space, CANDIDATES[space][second])} ({top.values[1]:.4f})"])
        return tabulate(rows, headers=["layer", "op", "name", "p", "runner-up (p)"], tablefmt="pipe")
