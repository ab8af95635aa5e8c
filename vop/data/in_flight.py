"""Which item each data worker is reading, so a dead worker's video can be named."""
from __future__ import annotations

import multiprocessing

from torch.utils.data import Dataset, get_worker_info


class InFlight(Dataset):
    """Wraps a dataset so the main process knows which item each worker was reading.

    Each worker writes the item it starts into its slot of a shared array; when a worker dies
    (a decoder segfault, the OOM killer) the DataLoader only says "worker exited unexpectedly",
    and `describe` turns the slots back into video paths.
    """

    def __init__(self, dataset, num_workers: int):
        self.dataset = dataset
        self.slots = multiprocessing.Array("q", [-1] * max(num_workers, 1), lock=False)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int):
        info = get_worker_info()
        self.slots[info.id if info is not None else 0] = item
        return self.dataset[item]

    def describe(self) -> str:
        items = [i for i in self.slots if i >= 0]
        if not items:
            return "no item was being read"
        paths = [self.dataset.split.video_paths[self.dataset.video_of(i)] for i in items]
        return "videos being read: " + ", ".join(f"{p} (item {i})" for p, i in zip(paths, items))
