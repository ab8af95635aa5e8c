"""Moment metrics against independent computations: DiDeMo's on its real validation annotations with made-up
scores (the authors' evaluation loop, written out here with lists), video-corpus recall by brute force."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vop.data.annotations.common import AnnotationError
from vop.data.annotations.didemo import load_didemo_moments
from vop.metrics.moments import (DIDEMO_MOMENTS, didemo_localisation, didemo_seconds, temporal_iou,
                                 vcmr_recall)

VAL = Path(__file__).parents[2] / "data" / "annotations" / "didemo" / "val_data.json"


def authors_loop(ranked_segments: list[list[tuple[int, int]]], times: list[list[list[int]]]) -> tuple[float, ...]:
    """DiDeMo's evaluation as its authors describe it: segments sorted best first; for each query the
    top segment's IoU with every annotator's span (inclusive segment indices) and every span's rank;
    the 3 best of each averaged; Rank@k counts average ranks <= k."""
    def seg_iou(p, g):
        inter = max(0, min(p[1], g[1]) - max(p[0], g[0]) + 1)
        return inter / (max(p[1], g[1]) - min(p[0], g[0]) + 1)

    ranks, ious = [], []
    for segs, gts in zip(ranked_segments, times):
        ious.append(np.mean(np.sort([seg_iou(segs[0], g) for g in gts])[-3:]))
        ranks.append(np.mean(np.sort([segs.index(tuple(g)) + 1 for g in gts])[:3]))
    ranks = np.array(ranks)
    return 100 * np.mean(ranks <= 1), 100 * np.mean(ranks <= 5), 100 * np.mean(ious)


def test_21_candidate_moments():
    assert len(DIDEMO_MOMENTS) == len(set(DIDEMO_MOMENTS)) == 21
    assert all(0 <= a <= b <= 5 for a, b in DIDEMO_MOMENTS)
    assert didemo_seconds((1, 1)) == (5.0, 10.0) and didemo_seconds((0, 5)) == (0.0, 30.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_didemo_metrics_equal_the_authors_loop_on_the_real_validation_file(seed):
    moments = load_didemo_moments(VAL)
    assert len(moments) == 4180  # the validation split's descriptions, as the authors count them
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(len(moments), 21, generator=gen)
    # Made-up scores that know the answer for some queries, so Rank@1 and Rank@5 are not near zero.
    for q in range(0, len(moments), 3):
        scores[q, DIDEMO_MOMENTS.index(moments[q].times[0])] += 1.0
    ranked = [[DIDEMO_MOMENTS[c] for c in sorted(range(21), key=lambda c: -float(row[c]))] for row in scores]
    expected = authors_loop(ranked, [[list(t) for t in m.times] for m in moments])
    got = didemo_localisation(scores, [m.times for m in moments])
    assert got["Rank@1"] == pytest.approx(expected[0], abs=1e-9)
    assert got["Rank@5"] == pytest.approx(expected[1], abs=1e-9)
    assert got["mIoU"] == pytest.approx(expected[2], abs=1e-9)
    assert 5 < got["Rank@1"] < got["Rank@5"] < 100


def test_didemo_rank1_needs_three_annotators_at_rank_one():
    scores = torch.zeros(2, 21)
    scores[:, DIDEMO_MOMENTS.index((2, 3))] = 1.0
    times = [((2, 3), (2, 3), (2, 3), (0, 0)), ((2, 3), (2, 3), (1, 1), (0, 0))]
    got = didemo_localisation(scores, times)
    assert got["Rank@1"] == 50.0                        # the second's 3 best ranks are 1, 1, >1
    assert got["mIoU"] == pytest.approx(100 * (1 + 2 / 3) / 2)  # the second: IoUs 1, 1, 0 (with (1,1)), 0


def test_didemo_times_are_checked(tmp_path):
    bad = tmp_path / "val_data.json"
    bad.write_text('[{"video": "a.mov", "description": "x", "times": [[3, 1]]}]')
    with pytest.raises(AnnotationError, match=r"entry 0: 'times'"):
        load_didemo_moments(bad)


def test_temporal_iou():
    a = torch.tensor([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0], [5.0, 5.0]])
    b = torch.tensor([[5.0, 15.0], [10.0, 20.0], [0.0, 10.0], [5.0, 5.0]])
    assert temporal_iou(a, b).tolist() == pytest.approx([1 / 3, 0.0, 1.0, 0.0])


def brute_force_recall(pv, ps, gv, gs, k, t):
    hits = 0
    for q in range(len(pv)):
        for r in range(min(k, len(pv[q]))):
            s, e = ps[q][r]
            gs0, ge0 = gs[q]
            inter = max(0.0, min(e, ge0) - max(s, gs0))
            union = max(e, ge0) - min(s, gs0)
            if pv[q][r] == gv[q] and union > 0 and inter / union >= t:
                hits += 1
                break
    return 100 * hits / len(pv)


def test_vcmr_recall_equals_brute_force():
    rng = random.Random(0)
    q, k_max = 60, 12
    pv = [[rng.randrange(-1, 5) for _ in range(k_max)] for _ in range(q)]
    ps = []
    for _ in range(q):
        row = []
        for _ in range(k_max):
            s = rng.uniform(0, 50)
            row.append((s, s + rng.uniform(1, 15)))
        ps.append(row)
    gv = [rng.randrange(0, 5) for _ in range(q)]
    gs = [(s, s + rng.uniform(2, 12)) for s in (rng.uniform(0, 50) for _ in range(q))]
    got = vcmr_recall(torch.tensor(pv), torch.tensor(ps), torch.tensor(gv), torch.tensor(gs),
                      ks=(1, 5, 10, 100), ious=(0.3, 0.5, 0.7))
    for k in (1, 5, 10, 100):
        for t in (0.3, 0.5, 0.7):
            assert got[f"R@{k}_IoU{t}"] == pytest.approx(brute_force_recall(pv, ps, gv, gs, k, t))
    assert got["R@100_IoU0.3"] > got["R@1_IoU0.7"]


def test_vcmr_recall_needs_the_right_video():
    span = torch.tensor([[[0.0, 10.0]]])
    assert vcmr_recall(torch.tensor([[1]]), span, torch.tensor([1]), torch.tensor([[0.0, 10.0]]))["R@1_IoU0.7"] == 100
    assert vcmr_recall(torch.tensor([[2]]), span, torch.tensor([1]), torch.tensor([[0.0, 10.0]]))["R@1_IoU0.5"] == 0
