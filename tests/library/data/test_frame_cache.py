"""Frame cache: stored frames equal the source frames within JPEG tolerance, nearest-frame mapping,
resumable builds with identical content, and the `frames` decoder in training (CPU)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.helpers import CONFIG_DIR, SMALL_SYNTHETIC, tiny_synthetic
from vop.commands.train import train
from vop.data.dataset import Collate, VideoTextDataset
from vop.data.decoders.base import VideoDecodeError
from vop.data.decoders.decord import DecordDecoder
from vop.data.decoders.frame_cache import FrameCacheDecoder
from vop.data.frame_sampling import frame_indices
from vop.data.frame_store import FrameCache, FrameCacheWriter, candidate_indices, nearest_stored, shard_paths
from vop.data.frames import resize_chw, resize_chw_float
from vop.data.jpeg import JpegFrames
from vop.data.synthetic import load_synthetic
from vop.engine.device_feed import DeviceFeed
from vop.tools.build_frame_cache import build_frame_cache, run_build

# JPEG tolerance at quality 90 (4:2:0 chroma) against the decord-decoded source frame: mean absolute
# error per video <= 1.5 grey levels and 99% of values within 20 (sharp saturated edges of the
# synthetic shapes lose most to chroma subsampling; measured: mean 0.6-1.2, p99 11-16).
JPEG_MEAN_TOL, JPEG_P99_TOL = 1.5, 20
CANDIDATES = 12


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    root = tmp_path_factory.mktemp("syn")
    splits = load_synthetic(root, num_train=5, num_test=2, frames=30, width=64, height=48)
    paths = [*splits["train"].video_paths, *splits["test"].video_paths]
    return root, [(Path(p).relative_to(root).as_posix(), str(p)) for p in paths]


def build(videos, cache: Path, **kw):
    kw = {"candidates": CANDIDATES, "short_side": 48, "workers": 0, "progress": False, **kw}
    return build_frame_cache(videos, cache, DecordDecoder(), **kw)


@pytest.fixture(scope="module")
def cache(videos, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache") / "frame_cache"
    stats = build(videos[1], path, shard_mb=0.01)  # tiny shards: several files, rollover exercised
    assert (stats.written, stats.failed) == (len(videos[1]), 0)
    return path


def snapshot(path: Path) -> dict:
    c = FrameCache(path)
    return {k: (e.num_frames, e.frames.tolist(), c.jpegs(k, np.arange(len(e.frames)))) for k, e in c.entries.items()}


def test_stored_frames_match_source_within_jpeg_tolerance(videos, cache):
    root, items = videos
    decoder, source = FrameCacheDecoder(cache, root, gpu_decode="off"), DecordDecoder()
    assert shard_paths(cache, 1)[0].is_file()  # rolled over to a second shard
    for _, path in items:
        stored = FrameCache(cache).entries[decoder.key(path)].frames
        assert stored.tolist() == candidate_indices(30, CANDIDATES).tolist()
        got = decoder.decode(path, stored).numpy().astype(int)  # [K, 48, 64, 3]
        diff = np.abs(got - source.decode(path, stored).numpy().astype(int))
        assert diff.mean() <= JPEG_MEAN_TOL and np.percentile(diff, 99) <= JPEG_P99_TOL, (path, diff.mean())


def test_requested_index_is_served_by_the_nearest_stored_frame(videos, cache):
    root, items = videos
    decoder, path = FrameCacheDecoder(cache, root, gpu_decode="off"), items[0][1]
    stored = candidate_indices(30, CANDIDATES)  # [1, 3, 6, 8, ...]
    wanted = np.array([0, stored[3] + 1, 29, stored[5]])
    expect = [stored[np.argmin(np.abs(stored - w))] for w in wanted]
    assert torch.equal(decoder.decode(path, wanted), decoder.decode(path, np.array(expect)))
    assert decoder.num_frames(path) == 30


def test_nearest_stored_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        stored = np.unique(rng.integers(0, 100, rng.integers(1, 20)))
        wanted = rng.integers(0, 100, 7)
        brute = [int(np.flatnonzero(np.abs(stored - w) == np.abs(stored - w).min())[0]) for w in wanted]
        assert nearest_stored(stored, wanted).tolist() == brute


@pytest.mark.parametrize("num_frames", [12, 13, 50, 91, 300, 1234])
def test_uniform_sample_is_exact_with_36_candidates(num_frames):
    stored = candidate_indices(num_frames, 36)
    wanted = frame_indices(num_frames, 12, "uniform")
    assert stored[nearest_stored(stored, wanted)].tolist() == wanted.tolist()


def test_interrupted_build_resumes_to_identical_content(videos, cache, tmp_path, monkeypatch):
    _, items = videos
    add, calls = FrameCacheWriter.add, []

    def failing_add(self, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt("injected after 3 videos")
        calls.append(args[0])
        add(self, *args, **kwargs)

    monkeypatch.setattr(FrameCacheWriter, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        build(items, tmp_path / "c", shard_mb=0.01)
    monkeypatch.setattr(FrameCacheWriter, "add", add)
    assert len(FrameCache(tmp_path / "c")) == 3
    # A kill in the middle of a write: half a video's bytes and half an index line on disk.
    data, index = shard_paths(tmp_path / "c", max(int(p.name[6:11]) for p in (tmp_path / "c").glob("*.bin")))
    with data.open("ab") as f:
        f.write(b"\xff\xd8 torn jpeg")
    with index.open("ab") as f:
        f.write(b'{"key": "half')
    stats = build(items, tmp_path / "c", shard_mb=0.01)
    assert (stats.skipped, stats.written) == (3, len(items) - 3)
    assert snapshot(tmp_path / "c") == snapshot(cache)


def test_rebuilding_with_other_parameters_is_refused(videos, cache):
    with pytest.raises(ValueError, match="quality"):
        build(videos[1], cache, quality=50)


def test_unreadable_video_is_counted_and_named(videos, tmp_path):
    root, items = videos
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    stats = build([*items[:1], ("broken.mp4", str(bad))], tmp_path / "c")
    assert (stats.written, stats.failed) == (1, 1)
    assert "broken.mp4" in (tmp_path / "c" / "failed.jsonl").read_text()
    with pytest.raises(VideoDecodeError, match="decord could not open it .* left it out of the frame cache"):
        FrameCacheDecoder(tmp_path / "c", tmp_path, gpu_decode="off").num_frames(bad)  # the build's reason


def test_deferred_jpeg_batch_equals_worker_decoded_batch(videos, cache):
    """The GPU path's plumbing on the CPU: bytes from the worker, decode in DeviceFeed."""
    root, items = videos
    split = load_synthetic(root, num_train=5, num_test=2, frames=30, width=64, height=48)["train"]
    cpu_dec, jpeg_dec = FrameCacheDecoder(cache, root, "off"), FrameCacheDecoder(cache, root, "off")
    jpeg_dec.gpu_decode = True  # what `auto` picks on a CUDA machine
    batches = []
    for dec in (cpu_dec, jpeg_dec):
        ds = VideoTextDataset(split, dec, num_frames=4, sampling="rand", frame_size=40, per="video", seed=3)
        assert isinstance(ds[0]["video"], JpegFrames) == (dec is jpeg_dec)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=Collate())
        batches.append([b["video"] for b in DeviceFeed(loader, torch.device("cpu"))])
    cpu_batches, jpeg_batches = batches
    assert [tuple(a.shape) for a in cpu_batches] == [(3, 4, 40, 40, 3), (2, 4, 40, 40, 3)]  # 5 videos, batches of 3
    assert len(jpeg_batches) == len(cpu_batches) and all(torch.equal(a, b) for a, b in zip(cpu_batches, jpeg_batches))


def test_float_resize_used_off_cpu_matches_uint8_kernel(videos):
    frames = DecordDecoder().decode(videos[1][0][1], np.arange(10)).permute(0, 3, 1, 2)  # [10, 3, 48, 64]
    for size in ((120, 160), (24, 32)):
        a, b = resize_chw(frames, *size).int(), resize_chw_float(frames, *size).int()
        assert (a - b).abs().float().mean() < 0.05 and (a - b).abs().max() <= 6


def test_build_script_config_then_train_one_epoch_with_frames_decoder(tmp_path):
    data = [o for o in SMALL_SYNTHETIC if not o.startswith(("data.num_workers", "trainer."))]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("build_frame_cache", [f"paths.data_dir={tmp_path / 'data'}", f"paths.output_dir={tmp_path}",
                                            "data=synthetic", *data, "cache.workers=1", "progress=false"])
    stats = run_build(cfg)
    assert stats.written == 48 + 16 and stats.failed == 0
    assert len(FrameCache(cfg.decoder.cache_dir)) == 64
    run = ["data.num_workers=1", "method.lr=1e-3"]
    result = train(tiny_synthetic("bias", tmp_path, ["decoder=frames", *run]))
    assert (result["train/bad_videos"], result["test/excluded_videos"], result["train/steps"]) == (0, 0, 12)
    # The cache holds every frame of these 12-frame videos (JPEG, within a few grey levels): the same run
    # decoding the mp4s with decord ranks the test split the same way.
    decoded = train(tiny_synthetic("bias", tmp_path / "decord", [f"paths.data_dir={tmp_path / 'data'}", *run]))
    ranks = [k for k in decoded if k.startswith(("test/t2v_", "test/v2t_"))]
    assert len(ranks) == 10 and {k: result[k] for k in ranks} == pytest.approx({k: decoded[k] for k in ranks})
