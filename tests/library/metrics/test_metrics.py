"""Retrieval ranks and metrics against brute-force O(MN) Python references."""

import numpy as np
import pytest
import torch

from vop.metrics import RetrievalMetrics, summarize, t2v_ranks, v2t_ranks


def _quantised(rows: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """Small integer entries: every dot product is exact in float32, whatever the summation
    order, so deliberate ties stay exact ties in every chunking."""
    return torch.randint(-2, 3, (rows, dim), generator=gen).float()


def _data(num_texts: int, num_videos: int, seed: int, dim: int = 4):
    """Random quantised embeddings with many ties, plus duplicated rows as certain ties."""
    gen = torch.Generator().manual_seed(seed)
    text, video = _quantised(num_texts, dim, gen), _quantised(num_videos, dim, gen)
    video[1] = video[0]  # two identical videos: every caption ties on them
    text[2] = text[0]
    # Every video gets at least one caption, the rest are random (several captions per video).
    text_video = torch.cat(
        [torch.arange(num_videos), torch.randint(0, num_videos, (num_texts - num_videos,), generator=gen)]
    )
    return text, video, text_video


def _ref_t2v(text, video, text_video) -> list[int]:
    sims = (text @ video.T).tolist()
    ranks = []
    for m, row in enumerate(sims):
        gt = row[int(text_video[m])]
        ranks.append(sum(1 for s in row if s > gt))
    return ranks


def _ref_v2t(text, video, text_video) -> list[int]:
    """X-Pool's v2t_metrics, brute force: each video of the gallery counts once, scored by its best
    caption; the query video's rank = videos whose best caption beats its own best caption."""
    sims = (video @ text.T).tolist()
    ranks = []
    for row in range(len(sims)):
        best = [max(s for m, s in enumerate(sims[row]) if int(text_video[m]) == g) for g in range(len(sims))]
        ranks.append(sum(1 for b in best if b > best[row]))
    return ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_t2v_ranks_match_bruteforce(seed: int) -> None:
    text, video, text_video = _data(23, 9, seed)
    got = t2v_ranks(text, video, text_video, chunk_size=4)
    assert got.dtype == torch.long
    assert got.tolist() == _ref_t2v(text, video, text_video)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_v2t_ranks_match_bruteforce(seed: int) -> None:
    text, video, text_video = _data(23, 9, seed)
    got = v2t_ranks(text, video, text_video, chunk_size=4)
    assert got.shape == (9,)
    assert got.tolist() == _ref_v2t(text, video, text_video)


def test_chunk_sizes_agree() -> None:
    text, video, text_video = _data(40, 13, 3, dim=6)
    t2v = [t2v_ranks(text, video, text_video, c) for c in (1, 3, 10_000)]
    v2t = [v2t_ranks(text, video, text_video, c) for c in (1, 3, 10_000)]
    assert all(torch.equal(t2v[0], r) for r in t2v)
    assert all(torch.equal(v2t[0], r) for r in v2t)


def test_ties_never_inflate_recall() -> None:
    # All videos identical: the ground truth ties with every video. Each query still yields
    # exactly one rank (no extra "hits" from tied items) and the recall counts queries.
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    video = torch.ones(4, 2)
    text_video = torch.tensor([0, 1, 3])
    ranks = t2v_ranks(text, video, text_video, chunk_size=2)
    assert ranks.tolist() == [0, 0, 0]
    assert summarize(ranks)["R@1"] == 100.0  # 3 hits out of 3 queries, never more
    # Distractors tied with each other but strictly better than the ground truth count each
    # once, so the ground truth lands after all of them.
    video = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    ranks = t2v_ranks(torch.tensor([[1.0, 0.0]]), video, torch.tensor([0]), chunk_size=1)
    assert ranks.tolist() == [3]


def test_v2t_takes_max_over_own_captions() -> None:
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.0, 1.0], [0.9, 0.1], [0.5, 0.5], [0.8, 0.0], [0.0, 0.7]])
    text_video = torch.tensor([0, 0, 1, 1, 1])
    # video 0: own best 0.9; video 1's best caption for it is 0.8 -> rank 0.
    # video 1: own best 0.7; video 0's best caption scores 1.0 -> rank 1 (one video, not two captions).
    assert v2t_ranks(text, video, text_video, chunk_size=1).tolist() == [0, 1]


@pytest.mark.parametrize("seed", [0, 1])
def test_v2t_with_five_captions_per_video_matches_bruteforce(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(12, 8, generator=gen)
    text_video = torch.arange(12).repeat_interleave(5)[torch.randperm(60, generator=gen)]
    text = video[text_video] + 1.5 * torch.randn(60, 8, generator=gen)  # noisy captions of their videos
    got = v2t_ranks(text, video, text_video, chunk_size=5)
    assert got.tolist() == _ref_v2t(text, video, text_video)
    per_caption = [sum(1 for s in (video[n] @ text.T).tolist()
                       if s > max((video[n] @ text[text_video == n].T).tolist())) for n in range(12)]
    assert got.tolist() != per_caption  # counting captions instead of videos gives other ranks here


def test_v2t_video_without_caption_raises() -> None:
    with pytest.raises(ValueError, match="1 of 3 videos have no caption"):
        v2t_ranks(torch.ones(2, 2), torch.ones(3, 2), torch.tensor([0, 1]), chunk_size=2)


def test_summarize_even_count_median_and_recalls() -> None:
    ranks = torch.tensor([0, 3, 4, 12])  # 1-based: 1, 4, 5, 13
    out = summarize(ranks)
    assert out == {"R@1": 25.0, "R@5": 75.0, "R@10": 75.0, "MdR": 4.5, "MnR": 5.75}
    assert all(isinstance(v, float) for v in out.values())
    assert out["MdR"] == float(np.median(ranks.numpy() + 1))


def test_summarize_odd_count() -> None:
    assert summarize(torch.tensor([9, 0, 2]))["MdR"] == 3.0


def _expected(text, video, text_video) -> dict[str, float]:
    out = {}
    for direction, ranks in (("t2v", _ref_t2v(text, video, text_video)), ("v2t", _ref_v2t(text, video, text_video))):
        out.update({f"{direction}_{k}": v for k, v in summarize(torch.tensor(ranks)).items()})
    return out


def test_metric_with_separate_shuffled_updates_and_duplicates() -> None:
    text, video, text_video = _data(30, 11, 4, dim=5)
    # Videos carry dataset indices 100, 103, 106, ...; captions refer to those indices.
    video_index = 100 + 3 * torch.arange(11)
    metric = RetrievalMetrics(chunk_size=4)
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    padded = torch.cat([order, order[:3]])  # DDP-style padding repeats some samples
    for batch in padded.split(4):
        metric.update(video_emb=video[batch].half(), video_index=video_index[batch])
    text_order = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    for batch in text_order.split(7):
        metric.update(text_emb=text[batch], text_video=video_index[text_video[batch]])
    got = metric.compute()
    assert got == pytest.approx(_expected(text, video, text_video))
    assert set(got) == {f"{d}_{k}" for d in ("t2v", "v2t") for k in ("R@1", "R@5", "R@10", "MdR", "MnR")}
    assert all(isinstance(v, float) for v in got.values())


def test_metric_drops_duplicate_texts_when_text_index_given() -> None:
    text, video, text_video = _data(12, 5, 5)
    metric = RetrievalMetrics(chunk_size=3)
    metric.update(video_emb=video, video_index=torch.arange(5))
    padded = torch.cat([torch.arange(12), torch.tensor([0, 1])])
    metric.update(text_emb=text[padded], text_video=text_video[padded], text_index=padded)
    assert metric.compute() == pytest.approx(_expected(text, video, text_video))


def test_metric_missing_video_raises() -> None:
    metric = RetrievalMetrics()
    metric.update(video_emb=torch.eye(3), video_index=torch.tensor([0, 1, 2]))
    metric.update(text_emb=torch.eye(3)[[0, 1, 2, 2]], text_video=torch.tensor([0, 1, 5, 7]))
    with pytest.raises(ValueError, match="2 captions refer to 2 videos"):
        metric.compute()


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_metric_reset_and_empty() -> None:
    metric = RetrievalMetrics()
    metric.update(video_emb=torch.eye(2), video_index=torch.tensor([0, 1]))
    metric.update(text_emb=torch.eye(2), text_video=torch.tensor([0, 1]))
    assert metric.compute()["t2v_R@1"] == 100.0
    metric.reset()
    with pytest.raises(RuntimeError, match="at least one caption and one video"):
        metric.compute()


def test_metric_rejects_half_pairs() -> None:
    with pytest.raises(ValueError, match="given together"):
        RetrievalMetrics().update(text_emb=torch.eye(2))
