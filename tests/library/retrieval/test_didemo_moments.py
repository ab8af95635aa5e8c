"""DiDeMo's candidate moments as a gallery (moments.split=didemo) and moment localisation scored as its authors
define it, on videos written here in DiDeMo's layout (one 30 s, one 22 s: the short one lacks segment 5)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import SMALL_MODEL, compose_cfg
from tests.library.metrics.test_moment_metrics import authors_loop
from vop.commands.retrieve import retrieve
from vop.data.synthetic import write_mp4
from vop.errors import InputError
from vop.metrics.moments import DIDEMO_MOMENTS
from vop.retrieval.gallery import Gallery
from vop.retrieval.moment_eval import evaluate_localisation

FPS = 2
ENTRIES = [  # DiDeMo's json: one entry per description, each annotator's (first, last) 5-s segments
    {"video": "long.mov", "description": "red then green", "times": [[0, 1], [0, 1], [0, 0], [1, 1]]},
    {"video": "long.mov", "description": "blue at the end", "times": [[5, 5], [4, 5], [5, 5], [5, 5]]},
    {"video": "short.mov", "description": "white in the middle", "times": [[2, 2], [2, 3], [2, 2], [1, 2]]},
    {"video": "short.mov", "description": "the start", "times": [[0, 0], [0, 0], [0, 1], [0, 0]]},
]


def didemo_root(tmp: Path) -> Path:
    root = tmp / "didemo"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (root / "annotations" / f"{split}_data.json").write_text(json.dumps(ENTRIES))
    (root / "videos").mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in (("long", 30), ("short", 22)):  # a colour per 5-s segment, as a scene per moment
        colours = rng.integers(0, 256, size=(6, 3))
        frames = np.stack([np.full((48, 64, 3), colours[int(t / FPS // 5)], dtype=np.uint8)
                           for t in range(seconds * FPS)])
        write_mp4(root / "videos" / f"{name}.mp4", frames, FPS)  # found by its stem, as re-encoded copies are
    return root


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Gallery:
    tmp = tmp_path_factory.mktemp("didemo_moments")
    path = tmp / "didemo.safetensors"
    overrides = ["action=build", f"gallery={path}", "data=didemo", f"data.root={didemo_root(tmp)}",
                 "data.splits.queries=moments", "split=val", "moments.split=didemo", "data.num_frames=2",
                 "data.eval_batch_size=8", "data.num_workers=0", "data.max_text_len=32", "model=clip_tiny",
                 "method=zeroshot", "trainer.device=cpu", *SMALL_MODEL]
    retrieve(compose_cfg("retrieve", overrides, tmp), overrides)
    return Gallery.load(path)


def test_rows_are_the_candidates_each_video_has(gallery: Gallery) -> None:
    rows = gallery.video_rows
    spans = {video: [tuple(gallery.spans[r].tolist()) for r in rs] for (video, _), rs in rows.items()}
    assert spans["long.mov"] == [(5.0 * a, 5.0 * (b + 1)) for a, b in DIDEMO_MOMENTS]
    short = [(a, b) for a, b in DIDEMO_MOMENTS if b < 5]  # 22 s: segments 0..4, the last cut at 22 s
    assert spans["short.mov"] == [(5.0 * a, min(22.0, 5.0 * (b + 1))) for a, b in short]
    assert gallery.moments["split"] == "didemo"
    assert gallery.caption_times[1] == [[25.0, 30.0], [20.0, 30.0], [25.0, 30.0], [25.0, 30.0]]
    assert gallery.caption_spans[2] == [10.0, 15.0]  # the span most annotators gave


def test_localisation_equals_the_authors_loop(gallery: Gallery) -> None:
    ranked, times = [], []
    for c, entry in enumerate(ENTRIES):
        owner = gallery.caption_video[c]
        rows = gallery.video_rows[(gallery.video_ids[owner], gallery.video_paths[owner])]
        scored = {}
        for r in rows:  # a row's segments from its seconds, worked out here: start / 5, last segment it reaches
            start, end = gallery.spans[r].tolist()
            scored[(int(start // 5), int((end - 1e-3) // 5))] = float(gallery.text_emb[c] @ gallery.video_emb[r])
        missing = [m for m in DIDEMO_MOMENTS if m not in scored]  # ranked last, in the candidates' order
        ranked.append(sorted(scored, key=lambda m: (-scored[m], DIDEMO_MOMENTS.index(m))) + missing)
        times.append(entry["times"])
    expected = authors_loop(ranked, times)
    metrics, chance = evaluate_localisation(gallery)
    assert [metrics["Rank@1"], metrics["Rank@5"], metrics["mIoU"]] == pytest.approx(list(expected), abs=1e-9)
    assert 0 < chance["Rank@5"] < 100 and 0 <= chance["Rank@1"] <= chance["Rank@5"]


def test_evaluate_prints_localisation_beside_vcmr(gallery: Gallery, capsys) -> None:
    overrides = ["action=evaluate", f"gallery={gallery.source}"]
    out = retrieve(compose_cfg("retrieve", overrides, Path(gallery.source).parent), overrides)
    printed = capsys.readouterr().out
    assert {"vcmr/R@1_IoU0.5", "didemo/Rank@1", "didemo/Rank@5", "didemo/mIoU"} <= set(out)
    assert f"didemo/mIoU {out['didemo/mIoU']:.2f} (chance" in printed


def test_didemo_candidates_take_no_window(tmp_path: Path) -> None:
    overrides = ["action=build", f"gallery={tmp_path / 'g.safetensors'}", "moments.split=didemo", "moments.window=4",
                 "model=clip_tiny", "data=synthetic_long"]
    with pytest.raises(InputError, match="moments.split=didemo .* leave out moments.window=4"):
        retrieve(compose_cfg("retrieve", overrides, tmp_path), overrides)
