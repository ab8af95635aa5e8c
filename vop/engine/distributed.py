"""Distributed helpers: process-group setup from torchrun's variables, rank-0 gates, gathers.

`torchrun --nproc_per_node=N train.py ...` starts N processes with RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set; `python train.py ...` sets none of them and runs as a world of
one without a process group, so every helper here also works (as a no-op) in a plain process.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

from vop.run_lock import launch_rank, launched_by_torchrun  # noqa: F401 (torchrun's rank, said once)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def init_distributed(device: torch.device, backend: str | None = None, timeout: timedelta | None = None) -> DistEnv:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA, or `backend`; collectives
    give up after `timeout`, torch's default if None); a world of one otherwise.

    Returns the rank layout. On CUDA each process uses the GPU `cuda:LOCAL_RANK`.
    """
    if not launched_by_torchrun():
        return DistEnv()
    env = DistEnv(launch_rank(), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
    if not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, **({"timeout": timeout} if timeout else {}))
        log.info("process group: %s, rank %d of %d", backend, env.rank, env.world_size)
    return env


def rank_device(device: torch.device, env: DistEnv) -> torch.device:
    """One GPU per process: `cuda` becomes `cuda:LOCAL_RANK` (DDP needs an explicit index)."""
    if device.type == "cuda" and (device.index is None or env.world_size > 1):
        return torch.device("cuda", env.local_rank)
    return device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. writes the synthetic dataset), the others after it."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    if rank != 0:
        barrier()
    yield
    if rank == 0:
        barrier()


def broadcast_object(obj: object) -> object:
    """Rank 0's `obj` on every rank (e.g. its run directory)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is True on any rank (a stop request must stop all of them)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over every rank (the same result on each); a copy."""
    values = values.clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_ranks_true(flag: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor -> True on every rank iff it is True on every rank; stays on the device (no host sync)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = flag.to(torch.float32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value[0] > 0


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0 whose backward returns each rank the gradient of its own rows.

    Every rank computes the same global loss from the gathered tensor, so the gradient reaching
    rank r's rows is the SUM over ranks of their (identical) gradients: all_reduce(sum), then
    slice. With DDP's gradient averaging on top, parameters get exactly the single-process
    gradient of the global-batch loss (W copies summed, then divided by W).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # x: [b, D] -> [W*b, D]
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # [W*b, D] -> [b, D]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[b, D] per rank -> [W*b, D] in rank order on every rank, with gradients flowing back.

    Every rank must pass the same number of rows (the training loader drops ragged batches).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherRows.apply(x)
