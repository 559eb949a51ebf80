"""One model trained by several processes: synchronised BatchNorm, DDP, and the way back."""

import logging

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..modeling import convert_sync_batchnorm
from ..utils import comm

logger = logging.getLogger(__name__)


def create_ddp_model(model: nn.Module, **kwargs) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when more than one process runs."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).device.type == "cuda":
        kwargs.setdefault("device_ids", [torch.cuda.current_device()])
    # broadcast_buffers (DDP's default) keeps BN statistics identical on every rank, so the
    # sharded evaluation uses exactly the statistics of the checkpoint that rank 0 saves.
    return DistributedDataParallel(model, **kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def sync_batchnorm(cfg, model: nn.Module) -> nn.Module:
    """``model`` with synchronised BatchNorm when several processes train and
    ``MODEL.NORM.SYNC`` is on, so that N processes compute what one process computes."""
    if comm.get_world_size() == 1 or not cfg.MODEL.NORM.SYNC:
        return model
    logger.info("MODEL.NORM.SYNC: BatchNorm statistics over the global batch of %d processes",
                comm.get_world_size())
    return convert_sync_batchnorm(model)
