"""NVDEC and nvJPEG: the CPU-side behaviour (fallback messages, CPU pass-through) everywhere, and the
GPU results against the CPU decoders where CUDA exists (marked `gpu`)."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import tiny_synthetic
from vop.data.decoders.base import VideoDecodeError
from vop.data.decoders.decord import DecordDecoder
from vop.data.decoders.frame_cache import FrameCacheDecoder
from vop.data.decoders.nvdec import NvdecBatch, NvdecDecoder, NvdecFrames, NvdecUnavailable, nvdec_missing
from vop.data.deferred import stack_videos
from vop.data.frames import fit_frames
from vop.data.jpeg import JpegFrames, decode_jpegs_cpu, decode_jpegs_gpu, encode_jpeg
from vop.data.synthetic import load_synthetic
from vop.engine.device_feed import DeviceFeed
from vop.errors import ConfigError

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
    from vop.commands.train import train

    cfg = tiny_synthetic("bias", tmp_path, ["decoder=nvdec", "trainer.max_steps_per_epoch=1"])
    assert train(cfg)["trainable_params"] > 0


def test_bad_fallback_option_is_named():
    with pytest.raises(ValueError, match="decoder.fallback='cpu'"):
        NvdecDecoder(fallback="cpu")


@cpu_only
def test_frames_decoder_gpu_decode_on_without_cuda_says_why(tmp_path):
    with pytest.raises(ConfigError, match="gpu_decode=on .*CUDA is not available"):
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


# ---------------------------------------------------------------- NVDEC logic with a fake PyNvVideoCodec
class FakeNvc:
    """PyNvVideoCodec's SimpleDecoder as the NVDEC code uses it, decoding with decord on the CPU.

    Like the real one, `get_batch_frames_by_index` drops indices past `frame_limit` instead of raising.
    The batches decode on the CPU device here, so `gpu_index` stands in for nvdec.gpu_index (which
    refuses a non-CUDA device)."""

    class OutputColorType:
        RGB = "rgb"

    gpu = 2  # the GPU the fake plays

    def __init__(self, frame_limit: int | None = None):
        self.frame_limit, self.built, self.reconfigured, self.gpu_ids = frame_limit, 0, 0, []
        nvc = self

        class SimpleDecoder:
            def __init__(self, path, gpu_id, use_device_memory, output_color_type, cuda_stream):
                nvc.built += 1
                nvc.gpu_ids.append(gpu_id)
                self.path = path

            def reconfigure_decoder(self, path):
                nvc.reconfigured += 1
                self.path = path

            def get_batch_frames_by_index(self, indices):
                keep = [i for i in indices if nvc.frame_limit is None or i < nvc.frame_limit]
                return list(DecordDecoder().decode(self.path, np.array(keep)))  # [H, W, 3] each, DLPack-able

        self.SimpleDecoder = SimpleDecoder

    def gpu_index(self, device: torch.device) -> int:
        return self.gpu


@pytest.fixture
def fake_nvc(monkeypatch):
    from vop.data.decoders import nvdec

    fake = FakeNvc()
    monkeypatch.setattr(nvdec, "_nvc", lambda: fake)
    monkeypatch.setattr(nvdec, "gpu_index", fake.gpu_index)
    nvdec._THREADS.clear()
    yield fake
    nvdec._THREADS.clear()


def test_nvdec_batch_decodes_reusing_each_threads_decoder(video, tmp_path, fake_nvc):
    other = load_synthetic(tmp_path, num_train=1, num_test=1, frames=12)["train"].video_paths[0]
    items = [NvdecFrames(str(p), np.array([9, 0, 3, 3]), 2, 32) for p in (video, other, video, other, video)]
    got = NvdecBatch(items).decode_videos(torch.device("cpu"))
    for item, frames in zip(items, got):
        assert torch.equal(frames, fit_frames(DecordDecoder().decode(item.path, item.indices), 32))
    assert 1 <= fake_nvc.built <= 2  # one decoder per thread, not per video
    NvdecBatch(items).decode_videos(torch.device("cpu"))
    assert fake_nvc.built <= 2  # the threads (and their decoders) outlive a batch
    one = [NvdecFrames(str(p), np.array([1, 2]), 1, 32) for p in (video, other, video)]
    NvdecBatch(one).decode_videos(torch.device("cpu"))
    assert fake_nvc.built <= 3 and fake_nvc.reconfigured >= 2  # one thread: re-pointed at each new file
    assert fake_nvc.gpu_ids == [fake_nvc.gpu] * fake_nvc.built  # every decoder on the device's GPU


def test_nvdec_short_batch_is_a_decode_error_naming_the_video(video, fake_nvc):
    fake_nvc.frame_limit = 10  # the container promised 20 frames; the stream holds 10
    good, short = (NvdecFrames(str(video), np.array(ix), 1, 32) for ix in ([0, 5, 9], [0, 5, 19]))
    ok, bad = NvdecBatch([good, short]).decode_videos(torch.device("cpu"))
    assert ok.shape == (3, 32, 32, 3)
    assert isinstance(bad, VideoDecodeError) and bad.path == str(video) and "2 of the 3 frames" in bad.reason


def test_nvdec_decodes_on_the_rank_device():
    from vop.data.decoders.nvdec import gpu_index

    assert gpu_index(torch.device("cuda", 3)) == 3  # torchrun's cuda:LOCAL_RANK, not a configured 0
    with pytest.raises(ValueError, match="NVDEC decodes on a CUDA device, not cpu"):
        gpu_index(torch.device("cpu"))


# ---------------------------------------------------------------- the background prefetch
def test_prefetcher_keeps_order_and_one_item_ahead():
    from vop.engine.prefetch import Prefetcher

    for _ in range(25):  # a thread handshake: repeated to catch a flaky order
        made, source = [], iter(range(6))

        def produce():
            made.append(next(source))
            return made[-1]

        with Prefetcher(produce) as ahead:
            for taken, value in enumerate(ahead, start=1):
                assert value == taken - 1 and len(made) <= taken + 1  # never more than one ahead
        assert made == list(range(6))


def test_prefetcher_reraises_errors_and_releases_an_early_exit():
    from vop.engine.prefetch import Prefetcher

    for _ in range(25):
        source = iter([1, 2])

        def produce():
            value = next(source, None)
            if value is None:
                raise VideoDecodeError("x.mp4", "broken")
            return value

        with pytest.raises(VideoDecodeError, match="x.mp4"):
            list(Prefetcher(produce))
        ahead = Prefetcher(lambda: 7)
        assert next(ahead) == 7
        ahead.close()
        assert not ahead._thread.is_alive()


def test_device_feed_keeps_item_on_the_host_and_prefetches_the_same_batches():
    batches = [{"video": torch.full((2, 1, 4, 4, 3), i, dtype=torch.uint8), "item": torch.tensor([i, i + 1]),
                "video_id": ["a", "b"]} for i in range(5)]
    plain, ahead = list(DeviceFeed(batches, torch.device("cpu"))), list(DeviceFeed(batches, "cpu", prefetch=True))
    assert [b["item"].tolist() for b in ahead] == [b["item"].tolist() for b in plain] == [[i, i + 1] for i in range(5)]
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(plain, ahead))


# ---------------------------------------------------------------- nvJPEG: the probe decides
@pytest.mark.parametrize("works, hardware, mode, expect", [
    (True, True, "auto", True), (True, False, "auto", False), (False, False, "auto", False),
    (True, False, "on", True)])
def test_gpu_decode_follows_the_nvjpeg_probe(monkeypatch, caplog, works, hardware, mode, expect):
    from vop.data.decoders import frame_cache
    from vop.data.jpeg import NvjpegProbe

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(frame_cache, "probe_nvjpeg", lambda index: NvjpegProbe(works, hardware, "probe says so"))
    with caplog.at_level(logging.INFO):
        assert frame_cache.resolve_gpu_decode(mode) is expect
    fell_back = mode == "auto" and not expect
    assert any(r.levelno == logging.WARNING and "falls back" in r.message for r in caplog.records) == fell_back


def test_gpu_decode_on_refuses_a_failing_probe(monkeypatch):
    from vop.data.decoders import frame_cache
    from vop.data.jpeg import NvjpegProbe

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(frame_cache, "probe_nvjpeg", lambda index: NvjpegProbe(False, False, "no list API"))
    with pytest.raises(ConfigError, match="gpu_decode=on .*no list API"):
        frame_cache.resolve_gpu_decode("on")


def test_nvjpeg_probe_survives_a_torchvision_without_the_list_api(monkeypatch):
    import sys
    import types

    from vop.data import jpeg

    def decode_jpeg(data, mode=None, device=None):  # torchvision < 0.19 took one tensor only
        if isinstance(data, list):
            raise TypeError("decode_jpeg(): argument 'input' must be Tensor, not list")

    io = types.SimpleNamespace(decode_jpeg=decode_jpeg, ImageReadMode=types.SimpleNamespace(RGB=3))
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.io", io)
    jpeg.probe_nvjpeg.cache_clear()
    probe = jpeg.probe_nvjpeg(0)
    jpeg.probe_nvjpeg.cache_clear()
    assert not probe.works and "must be Tensor, not list" in probe.detail


def test_corrupt_cached_jpeg_names_its_video(video):
    frames = DecordDecoder().decode(video, np.arange(2)).numpy()
    good = JpegFrames([encode_jpeg(f, 90) for f in frames], 16, "good.mp4")
    bad = JpegFrames([encode_jpeg(frames[0], 90), b"\xff\xd8 not a jpeg"], 16, "bad.mp4")
    ok, err = JpegFrames.collate([good, bad]).decode_videos(torch.device("cpu"))
    assert ok.shape == (2, 16, 16, 3)
    assert isinstance(err, VideoDecodeError) and err.path == "bad.mp4" and "build_frame_cache" in err.reason
