"""One training step's losses and gradients, and the model after several steps, for comparing N
processes with one (spawned by ``test_distributed_objective.py`` through ``engine.launch``)."""

import torch
from tiny import tiny_cfg  # noqa: F401  (registers the tiny components in spawned processes)

from cdnet_reid.config import get_cfg
from cdnet_reid.engine import DefaultTrainer, unwrap
from cdnet_reid.utils import comm
from cdnet_reid.utils.env import seed_all_rng
from cdnet_reid.utils.events import EventStorage


def first_step(opts, out_file):
    """Build the trainer of ``opts``, run the forward and backward of its first batch and save, on
    rank 0, the losses averaged over processes and the (DDP-averaged) gradients."""
    cfg = get_cfg()
    cfg.merge_from_list(opts)
    cfg.freeze()
    seed_all_rng(cfg.SEED)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    losses = trainer.forward_losses(trainer.next_batch())
    sum(losses.values()).backward()
    values = comm.all_gather({k: float(v.detach()) for k, v in losses.items()})
    avg = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
    grads = {n: p.grad.detach().clone() for n, p in unwrap(trainer.model).named_parameters()
             if p.grad is not None}
    if comm.is_main_process():
        torch.save({"losses": avg, "grads": grads}, out_file)
    comm.synchronize()  # leave together: a peer closing its connections early aborts gloo


def several_steps(opts, out_file, steps):
    """Build the trainer of ``opts`` as ``DefaultTrainer`` does for a run (optimizer built before
    the multi-process wrapping), run ``steps`` optimizer steps and save, on rank 0, every
    parameter and buffer of the model, and the parameters that the optimizer holds."""
    cfg = get_cfg()
    cfg.merge_from_list(opts)
    cfg.freeze()
    seed_all_rng(cfg.SEED)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    with EventStorage(0):
        for trainer.iter in range(steps):
            trainer.run_step()
    model = unwrap(trainer.model)
    held = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trained = [n for n, p in model.named_parameters() if id(p) in held]
    if comm.is_main_process():
        torch.save({"state": state, "trained": trained,
                    "params": [n for n, _ in model.named_parameters()]}, out_file)
    comm.synchronize()
