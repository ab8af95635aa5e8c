"""Moment galleries (issue 30): windows of long videos as rows, temporal NMS, spans in the gallery file,
start/end in the JSON API and the pages, synthetic_long's ground truth, and action=evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import SMALL_MODEL, compose_cfg
from vop.commands.retrieve import retrieve
from vop.data.decoders.base import Decoder, read_window
from vop.data.split import Split
from vop.data.video_timing import frame_rate
from vop.data.windows import Window, plan_windows, window_frames
from vop.errors import InputError
from vop.metrics.moments import temporal_iou
from vop.retrieval.gallery import FORMAT_MOMENTS, Gallery
from vop.retrieval.html import page_html
from vop.retrieval.moment_eval import chance_recall, evaluate_moments
from vop.retrieval.moments import rank_moments
from vop.retrieval.pipeline import RetrievalPipeline
from vop.retrieval.views import result_view

LONG = ["data=synthetic_long", "data.splits.num_videos=3", "data.splits.clips=3", "data.splits.min_frames=8",
        "data.splits.max_frames=12", "data.splits.width=64", "data.splits.height=48", "data.num_frames=4",
        "data.eval_batch_size=8", "data.num_workers=0", "model=clip_tiny", "method=zeroshot", "trainer.device=cpu",
        *SMALL_MODEL]
MOMENTS = ["moments.window=1", "moments.stride=0.5"]  # 8 frames every 4 at 8 fps


def test_windows_start_every_stride_and_the_last_ends_with_the_video() -> None:
    assert window_frames(20, 8.0, 1.0, 0.5) == [(0, 8), (4, 12), (8, 16), (12, 20)]
    assert window_frames(21, 8.0, 1.0, 0.5) == [(0, 8), (4, 12), (8, 16), (12, 20), (13, 21)]  # aligned to the end
    assert window_frames(5, 8.0, 1.0, 0.5) == [(0, 5)]  # shorter than a window: one row of its whole length
    assert window_frames(8, 8.0, 1.0, 0.5) == [(0, 8)]
    assert plan_windows(21, 8.0, 1.0, 0.5)[-1] == Window(13, 21, 13 / 8, 21 / 8)
    with pytest.raises(ValueError, match="stride"):
        window_frames(20, 8.0, 1.0, 0.0)


class Recording(Decoder):
    def __init__(self):
        self.asked = []

    def num_frames(self, path):
        return 100

    def decode(self, path, indices):
        self.asked.append(np.asarray(indices).tolist())
        return torch.zeros(len(indices), 4, 4, 3, dtype=torch.uint8)


def test_a_window_decodes_only_its_own_frames() -> None:
    decoder = Recording()
    frames = read_window(decoder, "v.mp4", Window(40, 60, 5.0, 7.5), 4, "uniform")
    assert frames.shape[0] == 4 and decoder.asked == [[42, 47, 52, 57]]  # segment centres of frames 40..59


def test_nms_keeps_the_best_of_overlapping_moments_and_caps_each_video() -> None:
    spans = torch.tensor([[0, 4], [1, 5], [4, 8], [0, 4], [2, 6], [8, 12.]])
    video = torch.tensor([0, 0, 0, 1, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    rows = torch.arange(6)
    # row 1 overlaps row 0 (IoU 0.6): dropped; row 4 overlaps row 3 by 2/6 < 0.5: kept
    assert rank_moments(scores, rows, video, spans, 10, 0.5, 10) == [0, 2, 3, 4, 5]
    assert rank_moments(scores, rows, video, spans, 10, 0.5, 1) == [0, 3]
    assert rank_moments(scores, rows, video, spans, 2, 0.5, 10) == [0, 2]
    assert rank_moments(scores, rows, video, spans, 10, 1.0, 10) == [0, 1, 2, 3, 4, 5]  # only identical spans


def test_subset_keeps_caption_spans_and_windows() -> None:
    w = [Window(0, 8, 0, 1), Window(4, 12, 0.5, 1.5), Window(0, 8, 0, 1)]
    split = Split("t", ["a", "a", "b"], [Path("a"), Path("a"), Path("b")], ["x", "y", "z"], [0, 1, 2],
                  caption_spans=[(0.0, 1.0), None, (2.0, 3.0)], windows=w)
    kept = split.subset([1, 2])
    assert kept.caption_spans == [None, (2.0, 3.0)] and kept.windows == w[1:] and kept.caption_video == [0, 1]


def test_chance_is_a_random_orders_recall() -> None:
    # 10 moments, 2 of them hits: R@1 = 2/10, R@5 = 1 - C(8,5)/C(10,5) = 1 - 56/252
    assert chance_recall(torch.tensor([2]), 10, 1) == pytest.approx(20.0)
    assert chance_recall(torch.tensor([2, 0]), 10, 5) == pytest.approx(100 * (1 - 56 / 252) / 2)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A moment gallery and a whole-video gallery of 3 tiny long videos (tiny random CLIP)."""
    tmp = tmp_path_factory.mktemp("moments")
    moments, whole = tmp / "moments.safetensors", tmp / "whole.safetensors"
    for path, extra in ((moments, MOMENTS), (whole, [])):
        overrides = ["action=build", f"gallery={path}", *extra]
        retrieve(compose_cfg("retrieve", [*LONG, *overrides], tmp), overrides)
    return moments, whole, tmp


def test_a_moment_gallery_holds_each_window_with_its_span(built) -> None:
    path, whole_path, _ = built
    gallery, whole = Gallery.load(path), Gallery.load(whole_path)
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["__metadata__"]["format"] == FORMAT_MOMENTS and header["spans"]["dtype"] == "F32"
    assert whole.spans is None and len(whole.video_ids) == 3 and gallery.moments == {"window": 1, "stride": 0.5}
    assert gallery.spans.shape == (len(gallery.video_ids), 2) and len(gallery.video_ids) > 3 * 3
    for (vid, path_), rows in gallery.video_rows.items():
        duration = Decoded.duration(path_)
        spans = gallery.spans[rows]
        assert spans[0, 0] == 0 and spans[-1, 1] == pytest.approx(duration)  # from the start to the end
        assert torch.all(spans[:, 1] - spans[:, 0] == 1.0) and torch.all(spans[1:, 0] > spans[:-1, 0])
    # each caption keeps its clip's span and links to the moment of its video that overlaps it most
    assert len(gallery.caption_spans) == 9 and all(s is not None for s in gallery.caption_spans)
    for c, row in enumerate(gallery.caption_video):
        rows = gallery.video_rows[(gallery.video_ids[row], gallery.video_paths[row])]
        overlap = temporal_iou(gallery.spans[rows].double(), torch.tensor(gallery.caption_spans[c]).double())
        assert row == rows[int(overlap.argmax())]


class Decoded:
    @staticmethod
    def duration(path: str) -> float:
        import decord
        return len(decord.VideoReader(path)) / frame_rate(path)


def test_a_text_query_returns_moments_merged_by_nms_and_capped_per_video(built) -> None:
    path, _, _ = built
    pipeline = RetrievalPipeline.from_gallery(path, topk=6, nms_iou=0.3, per_video=2)
    gallery = pipeline.gallery
    result = pipeline(gallery.captions[0])
    assert len(result.rows) == 6 and result.spans == [tuple(gallery.spans[r].tolist()) for r in result.rows]
    assert result.scores == sorted(result.scores, reverse=True)
    per_video: dict[str, list[int]] = {}
    for row in result.rows:
        per_video.setdefault(gallery.video_ids[row], []).append(row)
    for rows in per_video.values():
        assert len(rows) <= 2
        if len(rows) == 2:
            assert float(temporal_iou(gallery.spans[rows[0]], gallery.spans[rows[1]])) < 0.3
    assert " s  " in str(result)  # the printed hit names its span: "0.0-1.0 s"
    # the best moment of all is the first hit (NMS only drops worse ones)
    scores = gallery.text_emb[0:1] @ gallery.video_emb.T
    assert result.rows[0] == int(scores.argmax())
    video = pipeline(gallery.video_paths[0])  # a video query still ranks captions
    assert video.mode == "v2t" and video.spans is None


def test_the_json_api_and_the_pages_give_start_and_end(built) -> None:
    from vop.retrieval.server import SearchService

    path, whole_path, _ = built
    pipeline = RetrievalPipeline.from_gallery(path, topk=3)
    service = SearchService(pipeline)
    caption = pipeline.gallery.captions[1]
    answer = service.search(caption, 3)
    for hit in answer["hits"]:
        row = hit["row"]
        assert [hit["start"], hit["end"]] == pipeline.gallery.spans[row].tolist() and hit["end"] > hit["start"]
        assert hit["video_url"] == f"/video/{row}"
    assert service.health()["moments"] is True
    assert any(h["truth"] for h in service.search(caption, 20)["hits"])  # the caption's own moment is marked
    assert len(service._thumb(answer["hits"][0]["row"])) > 0  # the moment's own frames
    whole = SearchService(RetrievalPipeline.from_gallery(whole_path, topk=3)).search(caption, 3)
    assert all(h["start"] is None and h["end"] is None for h in whole["hits"])
    view = result_view(pipeline(caption), pipeline.gallery, pipeline.encoder.decoder, thumb_frames=2)
    html = page_html([view], "moments")
    first = answer["hits"][0]
    assert f"#t={first['start']:g},{first['end']:g}" in html and 'class="span"' in html
    script = (Path(__file__).parents[3] / "vop" / "retrieval" / "web" / "app.js").read_text()
    assert "#t=${hit.start},${hit.end}" in script  # the search page plays a moment from its start


def test_a_sharded_moment_build_equals_the_one_file_build(built) -> None:
    from vop.retrieval.gallery_shards import load_gallery

    path, _, tmp = built
    sharded = tmp / "sharded.safetensors"
    overrides = ["action=build", f"gallery={sharded}", "shards=2", *MOMENTS]
    retrieve(compose_cfg("retrieve", [*LONG, *overrides], tmp), overrides)
    one, two = Gallery.load(path), load_gallery(sharded)
    assert two.video_ids == one.video_ids and two.caption_video == one.caption_video
    assert torch.equal(two.spans, one.spans) and two.caption_spans == one.caption_spans and two.moments == one.moments
    torch.testing.assert_close(two.video_emb, one.video_emb)
    assert evaluate_moments(two) == evaluate_moments(one)


def test_shots_as_moments(built) -> None:
    """moments.split=shots (PySceneDetect): on synthetic_long every cut is a clip boundary, and a shot longer than
    moments.window is cut into windows."""
    pytest.importorskip("scenedetect", reason="PySceneDetect is the optional extra `shots`")
    _, _, tmp = built
    data = [*LONG, "data.splits.num_videos=2", "data.splits.min_frames=16", "data.splits.max_frames=20",
            "data.splits.seed=3"]  # clips of at least PySceneDetect's shortest shot (15 frames)
    for name, extra in (("shots", []), ("cut", ["moments.window=1.5", "moments.stride=1"])):
        path = tmp / f"{name}.safetensors"
        overrides = ["action=build", f"gallery={path}", "moments.split=shots", *extra]
        retrieve(compose_cfg("retrieve", [*data, *overrides], tmp), overrides)
        gallery = Gallery.load(path)
        assert gallery.moments["split"] == "shots" and gallery.moments["shot_threshold"] == 27.0
        for (_, file), rows in gallery.video_rows.items():
            spans, clips = gallery.spans[rows], {tuple(s) for c, s in enumerate(gallery.caption_spans)
                                                if gallery.video_paths[gallery.caption_video[c]] == file}
            edges = {e for s in clips for e in s}
            assert spans[0, 0] == 0 and spans[-1, 1] == pytest.approx(Decoded.duration(file))
            if name == "shots":  # contiguous shots, cut only where a clip ends (most clips found whole)
                assert torch.equal(spans[1:, 0], spans[:-1, 1]) and {float(t) for t in spans.flatten()} <= edges
                assert len({tuple(s.tolist()) for s in spans} & {tuple(s) for s in clips}) >= len(clips) - 1
            else:
                assert float((spans[:, 1] - spans[:, 0]).max()) <= 1.5


def test_evaluate_update_and_bad_options(built, capsys) -> None:
    path, whole_path, tmp = built
    metrics, chance = evaluate_moments(Gallery.load(path), nms_iou=0.5)
    assert set(metrics) == set(chance) and "R@1_IoU0.5" in metrics and 0 < chance["R@1_IoU0.5"] < 100
    overrides = ["action=evaluate", f"gallery={path}"]
    out = retrieve(compose_cfg("retrieve", [*LONG, *overrides], tmp), overrides)
    assert out["vcmr/R@1_IoU0.5"] == metrics["R@1_IoU0.5"]
    assert "vcmr/R@1_IoU0.5" in capsys.readouterr().out
    with pytest.raises(InputError, match="whole-video gallery"):
        evaluate_moments(Gallery.load(whole_path))
    for overrides in (["action=update", f"gallery={path}"], ["action=update", f"gallery={whole_path}", *MOMENTS]):
        with pytest.raises(InputError, match="moment"):
            retrieve(compose_cfg("retrieve", [*LONG, *overrides], tmp), overrides)
    overrides = ["action=build", f"gallery={tmp / 'x.safetensors'}", "moments.window=0"]
    with pytest.raises(InputError, match="moments.window=0"):
        retrieve(compose_cfg("retrieve", [*LONG, *overrides], tmp), overrides)
    with pytest.raises(InputError, match="nms_iou"):
        RetrievalPipeline.from_gallery(path, nms_iou=0)


def test_a_video_whose_windows_cannot_be_planned_counts_as_one_video(built, tmp_path, caplog) -> None:
    """Real bad files among the videos (an mp4 cut after 3 kB, a text file named .mp4): each is one unreadable
    *video* under max_bad_fraction, named with its reason, not one row among the windows of the others."""
    import logging
    import shutil

    from vop.data.bad_videos import BadVideosError

    folder = tmp_path / "videos"
    folder.mkdir()
    good = sorted(set(Gallery.load(built[0]).video_paths))
    for path in good:
        shutil.copy(path, folder)
    (folder / "cut.mp4").write_bytes(Path(good[0]).read_bytes()[:3000])
    (folder / "notes.mp4").write_text("not a video")
    overrides = ["action=build", f"gallery={tmp_path / 'g.safetensors'}", f"videos={folder}", *MOMENTS]
    with pytest.raises(BadVideosError, match=r"2 of 5 videos \(40.0%\) cannot be read.*cut.mp4 \(its length or frame "
                                             r"rate cannot be read"):
        retrieve(compose_cfg("retrieve", [*LONG, *overrides], tmp_path), overrides)  # 2 of 5 > 0.1, whatever the windows
    with caplog.at_level(logging.WARNING):
        retrieve(compose_cfg("retrieve", [*LONG, *overrides, "max_bad_fraction=0.5"], tmp_path),
                 [*overrides, "max_bad_fraction=0.5"])
    gallery = Gallery.load(tmp_path / "g.safetensors")
    assert {Path(p).name for p in gallery.video_paths} == {Path(p).name for p in good}
    assert "skipped 2 of 5 videos that cannot be read" in caplog.text and "notes.mp4" in caplog.text
