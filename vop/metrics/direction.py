"""Pairwise accuracies of the direction probe (synthetic benchmark): does the model prefer the
right one of two candidates that differ in one thing only?

- direction, text->video: a caption's video scores above the video's time-reversed twin.
- direction, video->text: a video scores its own caption above its twin's caption (the same words
  with the opposite direction).
- static, text->video: a caption's video scores above the videos that differ from it in shape,
  colour or background (the share of them it beats, averaged over captions).
- static, video->text: a video scores its own caption above the same caption with one static
  attribute changed (`counterfactuals`).

Every accuracy is a percentage; exact ties count one half, so a model that cannot tell the two
apart scores 50 whatever it does with ties. Similarity = dot product (pass unit embeddings), or
`score(text [M, D], video) -> [M, N]` where a video's embedding depends on the caption (X-Pool: the
model's `similarity`, video = frame embeddings [N, T, D]).
`*_outcomes` give the per-caption / per-video scores (1, 0.5, 0) behind the direction accuracies,
and `pair_standard_error` the probe's own sampling error of such a mean (pairs are the units).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Score = Callable[[Tensor, Tensor], Tensor] | None  # (text [M, D], videos) -> [M, N]; None: dot product


def _beats(own: Tensor, other: Tensor) -> Tensor:
    """1 where own > other, 0.5 on a tie, 0 below (elementwise)."""
    return (own > other).float() + 0.5 * (own == other).float()


def direction_t2v_outcomes(text_emb: Tensor, video_emb: Tensor, text_video: Tensor, twin: Tensor,
                           score: Score = None) -> Tensor:
    """text_emb [M, D], video_emb [N, D], text_video [M] (caption -> video), twin [N] (video -> twin) -> [M]."""
    if score is not None:
        sims, rows = score(text_emb, video_emb), torch.arange(text_emb.shape[0], device=text_emb.device)  # [M, N]
        return _beats(sims[rows, text_video], sims[rows, twin[text_video]])
    own = (text_emb * video_emb[text_video]).sum(-1)  # [M]
    other = (text_emb * video_emb[twin[text_video]]).sum(-1)  # [M]
    return _beats(own, other)


def direction_t2v(text_emb: Tensor, video_emb: Tensor, text_video: Tensor, twin: Tensor) -> float:
    return 100.0 * direction_t2v_outcomes(text_emb, video_emb, text_video, twin).mean().item()


def pair_standard_error(outcomes: Tensor, video: Tensor, twin: Tensor) -> float:
    """Standard error (percentage points) of mean(outcomes) over the probe's pairs: outcomes [K] of
    items belonging to videos video [K]; a pair's items are averaged first (they are not independent)."""
    pair = torch.minimum(video, twin[video])  # [K], one id per pair
    ids, index = torch.unique(pair, return_inverse=True)
    means = torch.zeros(len(ids)).index_add_(0, index.cpu(), outcomes.float().cpu())
    means /= torch.bincount(index.cpu(), minlength=len(ids)).float()  # [P]
    if len(ids) < 2:
        raise ValueError("pair_standard_error: needs at least 2 pairs")
    return 100.0 * (means.std(unbiased=True) / len(ids) ** 0.5).item()


def _best_caption_score(sims: Tensor, text_video: Tensor, video: Tensor) -> Tensor:
    """sims [N, M] (video x caption) -> [N]: each row's best score over the captions of `video[row]`."""
    mine = text_video[None, :] == video[:, None]  # [N, M]
    return sims.masked_fill(~mine, float("-inf")).amax(dim=1)


def direction_v2t_outcomes(text_emb: Tensor, video_emb: Tensor, text_video: Tensor, twin: Tensor,
                           score: Score = None) -> Tensor:
    """Per video [N]: its best own caption vs its twin's best caption. Shapes as in `direction_t2v_outcomes`."""
    sims = video_emb @ text_emb.T if score is None else score(text_emb, video_emb).T  # [N, M]
    videos = torch.arange(video_emb.shape[0], device=video_emb.device)
    own = _best_caption_score(sims, text_video, videos)  # [N]
    other = _best_caption_score(sims, text_video, twin)  # [N]
    return _beats(own, other)


def direction_v2t(text_emb: Tensor, video_emb: Tensor, text_video: Tensor, twin: Tensor) -> float:
    return 100.0 * direction_v2t_outcomes(text_emb, video_emb, text_video, twin).mean().item()


def static_t2v(text_emb: Tensor, video_emb: Tensor, text_video: Tensor, static: list, score: Score = None) -> float:
    """static[n]: video n's (shape, colour, background); each caption vs the videos that differ in it."""
    keys = {key: i for i, key in enumerate(dict.fromkeys(static))}
    group = torch.tensor([keys[k] for k in static], device=video_emb.device)  # [N]
    sims = text_emb @ video_emb.T if score is None else score(text_emb, video_emb)  # [M, N]
    own = sims.gather(1, text_video[:, None])  # [M, 1]
    other = group[None, :] != group[text_video][:, None]  # [M, N], True where the static attributes differ
    if not other.any(dim=1).all():
        raise ValueError("static_t2v: a caption has no video with other static attributes to compare with")
    wins = (_beats(own, sims) * other).sum(1) / other.sum(1)  # [M]
    return 100.0 * wins.mean().item()


def counterfactual_v2t(video_emb: Tensor, own_emb: Tensor, alt_emb: Tensor, alt_video: Tensor,
                       score: Score = None) -> float:
    """video_emb [N, D], own_emb [N, D] (each video's caption), alt_emb [K, D] altered captions of videos
    alt_video [K]: share of alterations that score below the video's own caption."""
    if score is not None:
        own = score(own_emb, video_emb).diagonal()[alt_video]  # [K]
        alt = score(alt_emb, video_emb).gather(1, alt_video[:, None])[:, 0]  # [K]
        return 100.0 * _beats(own, alt).mean().item()
    own = (video_emb[alt_video] * own_emb[alt_video]).sum(-1)  # [K]
    alt = (video_emb[alt_video] * alt_emb).sum(-1)  # [K]
    return 100.0 * _beats(own, alt).mean().item()
