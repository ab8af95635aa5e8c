"""Faults: NaN losses are skipped and counted, evaluation survives OOM, a dead worker is named."""
import json
import os

import pytest
import torch

import vop.engine.trainer as trainer_module
import vop.metrics.retrieval as retrieval
from tests.helpers import tiny_synthetic
from vop.commands.train import train
from vop.data.decoders.decord import DecordDecoder
from vop.engine.assembly import build_trainer, build_training
from vop.engine.training_faults import DataLoadError, NonFiniteLossError, StopRequest
from vop.metrics.retrieval import RetrievalMetrics

RUN = ["method.lr=1e-3", "trainer.max_steps_per_epoch=3", "trainer.log_every=1", "trainer.eval_every_epoch=false"]


def nan_on_calls(monkeypatch, calls: set[int]) -> None:
    """Make the loss NaN on the given (1-based) calls, keeping its graph (so a skipped step is not a no-op by luck)."""
    real, count = trainer_module.info_nce, [0]

    def loss(*args, **kwargs):
        count[0] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if count[0] in calls else value

    monkeypatch.setattr(trainer_module, "info_nce", loss)


def trainable(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def test_nan_loss_is_skipped_and_counted(monkeypatch, tmp_path):
    nan_on_calls(monkeypatch, {3})
    trainer = build_trainer(tiny_synthetic("bias", tmp_path, RUN))
    batches = iter(trainer.training.loader)
    trainer.train_step(next(batches), epoch=0)  # warm-up starts at lr 0
    before = trainable(trainer)
    trainer.train_step(next(batches), epoch=0)
    after = trainable(trainer)
    assert any(not torch.equal(before[n], after[n]) for n in before)  # a real step moves weights
    assert torch.isnan(trainer.train_step(next(batches), epoch=0))
    for name, value in trainable(trainer).items():
        assert torch.equal(value, after[name]), f"{name} changed in a skipped step"
    assert trainer.training.guard.total == 1 and trainer.step == 3
    trainer.log_train(1.0, 1.0, epoch=0)  # the count reaches the run's log
    last = json.loads((trainer.files.run_dir / "log.jsonl").read_text().splitlines()[-1])
    assert last["train/nonfinite_skipped"] == 1


def test_nan_losses_in_a_row_stop_the_run(monkeypatch, tmp_path):
    nan_on_calls(monkeypatch, {2, 3})
    with pytest.raises(NonFiniteLossError, match="2 non-finite losses in a row"):
        train(tiny_synthetic("bias", tmp_path, [*RUN, "trainer.max_nonfinite_in_row=2"]))


def test_eval_out_of_memory_halves_the_chunk_and_goes_on(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    text, video = torch.randn(40, 8, generator=gen), torch.randn(20, 8, generator=gen)
    owners = torch.arange(40) % 20
    expected = RetrievalMetrics(chunk_size=3)
    expected.update(text_emb=text, text_video=owners, video_emb=video, video_index=torch.arange(20))
    expected = expected.compute()
    real, tried = retrieval.similarity_matrix, []

    def small_memory(text_emb, video_emb, chunk_size):  # builds the [M, N] matrix chunk_size captions at a time
        tried.append(chunk_size)
        if chunk_size > 5:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(text_emb, video_emb, chunk_size)

    monkeypatch.setattr(retrieval, "similarity_matrix", small_memory)
    metric = RetrievalMetrics(chunk_size=32)
    metric.update(text_emb=text, text_video=owners, video_emb=video, video_index=torch.arange(20))
    assert metric.compute() == expected
    assert tried == [32, 16, 8, 4] and metric.chunk_size == 4


class CrashingDecoder(DecordDecoder):
    """Kills the data worker process (as a decoder segfault would) when it reaches one video."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def read(self, path, count, mode, rng=None):
        if str(path) == self.target and torch.utils.data.get_worker_info() is not None:
            os._exit(1)
        return super().read(path, count, mode, rng)


def test_dead_worker_ends_the_run_naming_the_video(tmp_path):
    cfg = tiny_synthetic("bias", tmp_path, [*RUN, "data.num_workers=1"])
    trainer = build_trainer(cfg)
    target = trainer.data.train.video_paths[5]
    trainer.parts.decoder = CrashingDecoder(str(target))  # the training loader rebuilt with it
    trainer.training = build_training(cfg, trainer.data.train, trainer.parts, trainer.runtime)
    with pytest.raises(DataLoadError, match="exited unexpectedly") as err:
        trainer.train_epochs(0, 0, stop=StopRequest())
    assert str(target) in str(err.value)
