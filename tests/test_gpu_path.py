"""NVDEC and nvJPEG: the CPU-side behaviour (fallback messages, CPU pass-through) everywhere, and the
GPU results against the CPU decoders where CUDA exists (marked `gpu`)."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import tiny_synthetic
from vop.data.decoders.decord import DecordDecoder
from vop.data.decoders.frame_cache import FrameCacheDecoder
from vop.data.decoders.nvdec import NvdecDecoder, NvdecFrames, NvdecUnavailable, nvdec_missing
from vop.data.deferred import stack_videos
from vop.data.frames import fit_frames
from vop.data.jpeg import JpegFrames, decode_jpegs_cpu, decode_jpegs_gpu, encode_jpeg
from vop.data.synthetic import load_synthetic
from vop.engine.device_feed import DeviceFeed

cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return load_synthetic(tmp_path_factory.mktemp("syn"), num_train=1, num_test=1, frames=20)["test"].video_paths[0]


@cpu_only
def test_nvdec_without_cuda_raises_naming_what_is_missing():
    with pytest.raises(NvdecUnavailable, match=r"missing: CUDA .*decoder=decord"):
        NvdecDecoder(fallback="error")


@cpu_only
def test_nvdec_without_cuda_falls_back_to_decord_and_says_so(video, caplog):
    with caplog.at_level(logging.WARNING):
        decoder = NvdecDecoder()  # fallback: decord (configs/decoder/nvdec.yaml)
    assert "decoder=nvdec cannot run here; missing: CUDA" in caplog.text and "Falling back to decord" in caplog.text
    rng = [np.random.default_rng(1), np.random.default_rng(1)]
    assert torch.equal(decoder.read(video, 6, "rand", rng[0]), DecordDecoder().read(video, 6, "rand", rng[1]))


@cpu_only
def test_nvdec_config_trains_on_cpu_through_the_fallback(tmp_path):
    from vop.engine.trainer import train

    cfg = tiny_synthetic("bias", tmp_path, ["decoder=nvdec", "trainer.max_steps_per_epoch=1"])
    assert train(cfg)["trainable_params"] > 0


def test_bad_fallback_option_is_named():
    with pytest.raises(ValueError, match="decoder.fallback='cpu'"):
        NvdecDecoder(fallback="cpu")


@cpu_only
def test_frames_decoder_gpu_decode_on_without_cuda_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="gpu_decode=on .*CUDA is not available"):
        FrameCacheDecoder(tmp_path, tmp_path, gpu_decode="on")


def test_mixed_deferred_kinds_in_one_batch_are_refused():
    items = [JpegFrames([b""], 8), NvdecFrames("a.mp4", np.zeros(1, dtype=np.int64), 1, 8)]
    with pytest.raises(TypeError, match="mixes deferred kinds"):
        stack_videos(items)


def test_device_feed_on_cpu_passes_tensors_through():
    batches = [{"video": torch.full((2, 1, 4, 4, 3), i, dtype=torch.uint8), "video_id": ["a", "b"]} for i in range(3)]
    out = list(DeviceFeed(batches, torch.device("cpu")))
    assert len(out) == 3 and all(torch.equal(o["video"], b["video"]) and o["video_id"] == b["video_id"]
                                 for o, b in zip(out, batches))


# ---------------------------------------------------------------- CUDA only
@pytest.mark.gpu
def test_nvdec_matches_decord_within_two_grey_levels(video):
    if nvdec_missing():
        pytest.skip(f"NVDEC unavailable: {nvdec_missing()}")
    indices = np.array([19, 0, 7, 7, 12])
    got = NvdecDecoder(fallback="error").decode(video, indices)
    assert got.device.type == "cuda" and got.dtype == torch.uint8
    diff = (got.cpu().int() - DecordDecoder().decode(video, indices).int()).abs()
    assert diff.float().mean() <= 2.0, diff.float().mean()


@pytest.mark.gpu
def test_nvdec_batch_through_device_feed(video):
    if nvdec_missing():
        pytest.skip(f"NVDEC unavailable: {nvdec_missing()}")
    decoder = NvdecDecoder(fallback="error")
    items = [fit_frames(decoder.read(video, 4, "uniform"), 32) for _ in range(3)]
    batch = next(iter(DeviceFeed([{"video": stack_videos(items)}], torch.device("cuda"))))["video"]
    assert batch.shape == (3, 4, 32, 32, 3) and batch.is_cuda


@pytest.mark.gpu
def test_nvjpeg_matches_cpu_decode(video):
    frames = DecordDecoder().decode(video, np.arange(5)).numpy()
    jpegs = [encode_jpeg(f, 90) for f in frames]
    blobs = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
    gpu = torch.stack([im.permute(1, 2, 0) for im in decode_jpegs_gpu(blobs, torch.device("cuda"))]).cpu()
    diff = (gpu.int() - decode_jpegs_cpu(jpegs).int()).abs()
    assert diff.float().mean() <= 1.0 and diff.max() <= 8  # IDCT/upsampling differ between libjpeg and nvJPEG


@pytest.mark.gpu
def test_fit_frames_on_cuda_matches_cpu(video):
    frames = DecordDecoder().decode(video, np.arange(6))
    diff = (fit_frames(frames.cuda(), 224).cpu().int() - fit_frames(frames, 224).int()).abs()
    assert diff.float().mean() < 0.05 and diff.max() <= 6


@pytest.mark.gpu
def test_device_feed_prefetches_onto_cuda():
    batches = [{"video": torch.full((2, 1, 4, 4, 3), i, dtype=torch.uint8).pin_memory()} for i in range(4)]
    out = [b["video"].cpu() for b in DeviceFeed(batches, torch.device("cuda"))]
    assert all(torch.equal(o, b["video"]) for o, b in zip(out, batches))
