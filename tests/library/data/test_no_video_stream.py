"""A file with no moving picture (AAC or PCM audio in an mp4, or audio with its cover art) is "it has
no video stream", naming the file, from every decoder vop has (decord, pyav, torchcodec, nvdec's
worker side and its CPU fallback, the frame-cache build and the `frames` decoder), never a library's
own words (an index error, "cannot find video stream with wanted index: -1"); training skips and
counts it with that reason, across worker processes, and the test-split check names it."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from tests.helpers import CONFIG_DIR, compose_cfg
from vop.data.bad_videos import BadVideoCounter, BadVideosError, usable_test_split
from vop.data.dataset import Collate, VideoTextDataset, make_loader
from vop.data.decoders.base import VideoDecodeError
from vop.data.decoders.decord import DecordDecoder
from vop.data.decoders.frame_cache import FrameCacheDecoder
from vop.data.decoders.nvdec import NvdecDecoder
from vop.data.frame_store import FrameCache
from vop.data.sample_videos import write_audio_only, write_video
from vop.data.split import Split
from vop.data.video_header import read_video_header
from vop.tools.build_frame_cache import build_frame_cache

# The decoders that read video files on the CPU (as tests/library/data/test_decoder_backends.py).
DECODERS = sorted(p.stem for p in Path(CONFIG_DIR, "decoder").glob("*.yaml") if p.stem not in ("frames", "nvdec"))
# name: (how it is written, the reason every decoder must give)
FILES = {
    "aac.mp4": ({}, "it has no video stream (only audio aac)"),
    "pcm.mp4": ({"codec": "pcm_s16le"}, "it has no video stream (only audio pcm_s16le)"),
    "song with cover.mp4": ({"cover_art": True}, "it has no video stream (only audio aac, cover art png)"),
}


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    for name, (how, _) in FILES.items():
        write_audio_only(folder / name, **how)
    return folder


def make(name: str, tmp_path: Path, short_side: int | None):
    if name == "torchcodec":
        pytest.importorskip("torchcodec.decoders", exc_type=(ImportError, RuntimeError),
                            reason="torchcodec needs FFmpeg's shared libraries: apt-get install ffmpeg")
    cfg = compose_cfg("train", [f"decoder={name}", f"decoder.short_side={short_side or 'null'}"], tmp_path)
    return instantiate(cfg.decoder)


def assert_no_video(call, path: Path, reason: str) -> None:
    with pytest.raises(VideoDecodeError) as err:
        call()
    assert (err.value.path, err.value.reason) == (str(path), reason)
    assert str(err.value) == f"cannot decode video {str(path)!r}: {reason}"


def test_the_files_are_what_they_claim(audio):
    """The cover art is a video stream to FFmpeg, but an attached picture: no moving one."""
    import av

    for name in FILES:
        with av.open(str(audio / name)) as container:
            assert [s.type for s in container.streams] == ["audio"] + ["video"] * ("cover" in name)
        assert read_video_header(audio / name).codecs == ()


@pytest.mark.parametrize("short_side", [None, 224])
@pytest.mark.parametrize("name", DECODERS)
def test_every_decoder_says_no_video_stream(name, short_side, audio, tmp_path):
    decoder = make(name, tmp_path, short_side)
    for file, (_, reason) in FILES.items():
        path = audio / file
        assert_no_video(lambda: decoder.num_frames(path), path, reason)
        assert_no_video(lambda: decoder.decode(path, np.array([0])), path, reason)
        assert_no_video(lambda: decoder.read(path, 4, "uniform"), path, reason)


def test_a_video_with_sound_still_decodes(tmp_path):
    """The check reads the streams, not the presence of audio: a video stream is found and used."""
    import av

    silent = write_video(tmp_path / "silent.mp4", 8, 64, 48)
    with_sound = tmp_path / "with sound.mp4"
    with av.open(str(silent)) as inp, av.open(str(with_sound), "w") as out:
        tone = out.add_stream("aac", rate=16000)
        tone.layout = "mono"
        video = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    for name in DECODERS:
        decoder = make(name, tmp_path, None)
        assert decoder.num_frames(with_sound) == 8
        assert decoder.read(with_sound, 4, "uniform").shape == (4, 48, 64, 3)


def test_nvdec_says_it_in_the_worker_and_when_falling_back(audio):
    """Without a GPU nvdec falls back to decord; on one, the data worker counts frames with decord
    before NVDEC sees the file (NvdecDecoder.read), so the reason is the same there: checked here by
    taking the GPU's branch, which fails before any CUDA call."""
    fallback = NvdecDecoder(fallback="decord")
    on_gpu = NvdecDecoder(fallback="decord")
    on_gpu.available = True  # the worker's branch of a machine with NVDEC
    for file, (_, reason) in FILES.items():
        path = audio / file
        assert_no_video(lambda: fallback.read(path, 4, "uniform"), path, reason)
        assert_no_video(lambda: fallback.decode(path, np.array([0])), path, reason)
        assert_no_video(lambda: on_gpu.read(path, 4, "uniform"), path, reason)
        assert_no_video(lambda: on_gpu.num_frames(path), path, reason)


def test_the_frame_cache_build_skips_it_and_the_frames_decoder_says_why(audio, tmp_path, caplog):
    good = write_video(audio.parent / "cache videos" / "good.mp4", 12, 64, 48)
    videos = [("good.mp4", str(good)), *((name, str(audio / name)) for name in FILES)]
    with caplog.at_level(logging.WARNING, logger="vop.tools.build_frame_cache"):
        stats = build_frame_cache(videos, tmp_path / "cache", DecordDecoder(), candidates=4, short_side=48,
                                  workers=0, progress=False)
    assert (stats.written, stats.failed) == (1, 3)
    assert FrameCache(tmp_path / "cache").failed == {name: reason for name, (_, reason) in FILES.items()}
    for name, (_, reason) in FILES.items():
        assert f"frame cache: skipping {name}: {reason}" in caplog.text
    decoder = FrameCacheDecoder(tmp_path / "cache", audio, gpu_decode="off")
    path = audio / "aac.mp4"
    with pytest.raises(VideoDecodeError) as err:
        decoder.read(path, 4, "uniform")
    assert err.value.path == str(path)
    assert err.value.reason == ("it has no video stream (only audio aac) (so scripts/build_frame_cache.py left it "
                                f"out of the frame cache {tmp_path / 'cache'})")
    with pytest.raises(VideoDecodeError, match="it is not in the frame cache"):  # never built: what it said before
        decoder.num_frames(audio / "never built.mp4")


@pytest.mark.parametrize("name", DECODERS)
def test_training_skips_and_counts_it_across_worker_processes(name, audio, tmp_path, caplog):
    paths = [write_video(tmp_path / f"v{i}.mp4", 8, 64, 48) for i in range(3)] + [audio / "aac.mp4"]
    split = Split("train", ["v0", "v1", "v2", "song"], paths, [f"caption {i}" for i in range(4)], list(range(4)))
    dataset = VideoTextDataset(split, make(name, tmp_path, 48), 4, "rand", 48, skip_bad=True)
    loader = make_loader(dataset, batch_size=4, shuffle=False, num_workers=1, collate=Collate(), seed=0)
    counter = BadVideoCounter(split.num_videos, 0.5)
    served = []
    with caplog.at_level(logging.WARNING, logger="vop.data.bad_videos"):
        for batch in loader:  # decoded in a worker process: the reason crosses it
            counter.update(batch["skipped"])
            served += batch["index"].tolist()
    reason = "it has no video stream (only audio aac) (split 'train', item 3, video 'song')"
    assert counter.bad == {str(audio / "aac.mp4"): reason}
    assert counter.report() == {"train/bad_videos": 1, "train/skipped_draws": 1}
    assert f"skipped bad training video {audio / 'aac.mp4'}: {reason}" in caplog.text
    assert len(served) == 4 and 3 not in served  # another video was drawn in its place


def test_the_test_split_check_names_it(audio, tmp_path):
    video = write_video(tmp_path / "v0.mp4", 8, 64, 48)
    split = Split("test", ["v0", "song"], [video, audio / "song with cover.mp4"], ["a", "b"], [0, 1])
    with pytest.raises(BadVideosError, match="1 of 2 test videos are missing or broken: .*song with cover.mp4 "
                                             r"\(it has no video stream \(only audio aac, cover art png\)\)"):
        usable_test_split(split, allow_missing=False, manifest_path=None)
