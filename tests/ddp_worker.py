"""A two-tower toy trained one step under DDP (spawned by tests/library/engine/test_distributed.py).

Kept apart from the test module so spawned processes import only torch and vop's distributed
helpers, not transformers and Hydra.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from vop.engine.distributed import gather_with_grad
from vop.losses import info_nce


class TwoTowers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.text, self.video = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4)
        self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, text, video):
        return F.normalize(self.text(text), dim=-1), F.normalize(self.video(video), dim=-1)


def global_batch_grads(model: torch.nn.Module, text: torch.Tensor, video: torch.Tensor) -> dict:
    """Gradients of InfoNCE over the gathered batch; `model` may be DDP-wrapped."""
    towers = model.module if isinstance(model, DistributedDataParallel) else model
    t, v = model(text, video)  # [b, 4] each
    info_nce(gather_with_grad(t), gather_with_grad(v), towers.logit_scale).backward()
    return {n: p.grad.clone() for n, p in towers.named_parameters()}


def grad_worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model, text, video = TwoTowers(), torch.randn(8, 6), torch.randn(8, 5)
    rows = slice(rank * 8 // world, (rank + 1) * 8 // world)  # rank order = gathered order
    grads = global_batch_grads(DistributedDataParallel(model), text[rows], video[rows])
    torch.save(grads, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def nonfinite_worker(rank: int, world: int, store: str, out: str) -> None:
    """Rank 1's embeddings hold a NaN, rank 0's do not: every rank must stop with the same message,
    and then meet the others in a gather (a rank that went on alone would leave them waiting)."""
    from vop.engine.finite_embeddings import NonFiniteError, require_finite_on_every_rank

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    video, text = torch.randn(3, 4), torch.randn(5, 4)
    if rank == 1:
        video[2, 0] = float("nan")
    try:
        require_finite_on_every_rank(video, text, "evaluating the test split")
        message = "no error"
    except NonFiniteError as err:
        message = str(err)
    dist.all_gather_object([None] * world, rank)  # every rank arrives here
    with open(f"{out}/rank{rank}.txt", "w") as f:
        f.write(message)
    dist.destroy_process_group()
