"""CUDA only (marked `gpu`, skipped without it): a real training step in fp16 + GradScaler and in
bf16, the device feed on an explicit rank device, and the GPU decoders against decord.

Peak memory is recorded as a test property (`--junitxml` keeps it; scripts/gpu_check.sh does)."""
from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
import torch

from tests.helpers import tiny_synthetic
from vop.data.decoders.decord import DecordDecoder
from vop.data.decoders.nvdec import NvdecDecoder, nvdec_missing
from vop.data.deferred import stack_videos
from vop.data.frames import fit_frames
from vop.data.synthetic import load_synthetic
from vop.engine.device_feed import DeviceFeed

pytestmark = pytest.mark.gpu


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["bias", "full", "lora", "xpool"])  # lora: peft layers; xpool: the head under autocast
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_training_steps_on_cuda(method, precision, tmp_path, record_property):
    from vop.engine.assembly import build_trainer

    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no bf16")
    cfg = tiny_synthetic(method, tmp_path, ["trainer.device=cuda", f"trainer.precision={precision}",
                                            "method.lr=1e-3", "scheduler.warmup_ratio=0", "data.num_workers=2"])
    trainer = build_trainer(cfg)
    assert trainer.training.scaler.is_enabled() == (precision == "fp16")
    before = trainable(trainer.model)
    torch.cuda.reset_peak_memory_stats(trainer.device)
    for batch in islice(DeviceFeed(trainer.training.loader, trainer.device), 4):
        assert batch["video"].is_cuda and not batch["item"].is_cuda
        trainer.train_step(batch, epoch=0)
    loss = trainer.window_loss()
    peak = torch.cuda.max_memory_allocated(trainer.device) / 2**30
    record_property("peak_gib", round(peak, 4))
    assert np.isfinite(loss) and trainer.training.guard.total == 0 and peak > 0
    after = trainable(trainer.model)
    assert sum(not torch.equal(before[n], after[n]) for n in before) >= len(before) // 2  # the update reached them
    assert trainer.overflow_steps < 4  # fp16: the first scales (65536, ...) may overflow, not every step


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return load_synthetic(tmp_path_factory.mktemp("syn"), num_train=1, num_test=1, frames=20)["test"].video_paths[0]


def test_device_feed_on_an_explicit_rank_device(video):
    device = torch.device("cuda", torch.cuda.device_count() - 1)  # torchrun's cuda:LOCAL_RANK
    batches = [{"video": torch.full((2, 3, 8, 8, 3), i, dtype=torch.uint8).pin_memory(), "item": torch.tensor([i, i])}
               for i in range(6)]
    out = list(DeviceFeed(batches, device))
    assert all(b["video"].device == device and int(b["video"][0, 0, 0, 0, 0]) == i for i, b in enumerate(out))
    if nvdec_missing():
        pytest.skip(f"NVDEC unavailable: {nvdec_missing()}")
    decoder = NvdecDecoder(fallback="error")
    items = [fit_frames(decoder.read(video, 4, "uniform"), 32) for _ in range(5)]
    got = next(iter(DeviceFeed([{"video": stack_videos(items), "item": torch.arange(5)}], device)))["video"]
    assert got.device == device and got.shape == (5, 4, 32, 32, 3)


def test_nvdec_batch_through_the_prefetching_feed_matches_decord(video):
    if nvdec_missing():
        pytest.skip(f"NVDEC unavailable: {nvdec_missing()}")
    decoder = NvdecDecoder(fallback="error")
    batches = [{"video": stack_videos([fit_frames(decoder.read(video, 4, "rand", np.random.default_rng(s)), 48)
                                       for s in range(4)]), "item": torch.arange(4)} for _ in range(6)]
    for batch in DeviceFeed(batches, torch.device("cuda")):
        torch.cuda.current_stream().synchronize()
        for item, frames in zip(batches[0]["video"].items, batch["video"]):
            ref = fit_frames(DecordDecoder().decode(video, item.indices).cuda(), 48)
            assert (frames.int() - ref.int()).abs().float().mean() <= 2.0


def test_nvjpeg_probe_on_this_gpu(record_property):
    from vop.data.jpeg import probe_nvjpeg

    probe = probe_nvjpeg(torch.cuda.current_device())
    record_property("nvjpeg", f"works={probe.works} hardware={probe.hardware} ({probe.detail})")
    if not probe.works:
        pytest.skip(f"nvJPEG unusable here: {probe.detail}")
    assert probe.hardware in (True, False)
