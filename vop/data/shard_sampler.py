"""Which items each process loads: one shard of a per-epoch permutation, resumable mid-epoch.

The same sampler runs with one process (a world of one) and under torchrun, so the global
batch of step k is the same set of items for any number of processes: with W ranks and a
per-rank batch b = B / W, rank r's k-th batch holds positions (k*b + j)*W + r of the epoch's
permutation, and the union over ranks is positions [k*B, (k+1)*B): the single-process batch.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DistributedSampler

from vop.errors import ConfigError


class ShardedSampler(DistributedSampler):
    """`DistributedSampler` (seeded by seed + epoch) that can start an epoch after `start` of its items.

    Resuming mid-epoch sets `start` = batches already done x per-rank batch size, so the loader
    never decodes the videos it would skip.
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, group: int = 1):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        if group < 1 or len(dataset) % group:
            raise ConfigError(f"data.shuffle_group={group} must be >= 1 and divide the {len(dataset)} training items")
        self.start, self.group = 0, group

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        if self.group == 1 or not self.shuffle:
            return iter(list(super().__iter__())[self.start:])
        # Shuffle blocks of `group` consecutive items (e.g. a video and its time-reversed twin), so
        # they stay neighbours, and shard positions in that order exactly as the parent shards items.
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        blocks = torch.randperm(len(self.dataset) // self.group, generator=g)  # [n / group]
        order = (blocks[:, None] * self.group + torch.arange(self.group)).flatten().tolist()  # [n]
        self.shuffle = False  # the parent then yields positions 0..n-1, padded and sharded
        try:
            positions = list(super().__iter__())
        finally:
            self.shuffle = True
        return iter([order[p] for p in positions][self.start:])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)
