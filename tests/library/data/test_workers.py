"""data.num_workers follows the machine: at most 8, no more than this process's share of the cores."""
from __future__ import annotations

import warnings
from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader

from tests.helpers import compose_cfg
from vop.data.workers import default_workers, usable_cpus


@pytest.mark.parametrize(("cpus", "ranks", "want"), [(2, 1, 2), (16, 1, 8), (16, 4, 4), (12, 8, 1), (1, 1, 1)])
def test_default_workers_share_the_cores_among_local_ranks(cpus, ranks, want, monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks))
    with mock.patch("vop.data.workers.usable_cpus", return_value=cpus):
        assert default_workers(8) == want


@pytest.mark.parametrize("data", ["msrvtt9k", "custom", "synthetic"])
def test_every_data_set_composes_to_workers_this_machine_has(data, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cfg = compose_cfg("train", [f"data={data}"], tmp_path)
    workers = cfg.data.num_workers
    assert 1 <= workers <= min(8, usable_cpus())
    # PyTorch's own check, the one that warns "This DataLoader will create N worker processes ...".
    loader = DataLoader(torch.utils.data.TensorDataset(torch.zeros(4)), num_workers=workers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader.check_worker_number_rationality()
