"""Post-processing of a [captions x videos] similarity matrix: scores that are not the model's own.

Each is a named result apart from the raw metrics (metrics.json: `test/dsl/t2v_R@1` beside
`test/t2v_R@1`), with fixed parameters that are never tuned on the test split (docs/protocol.md):

- `dsl`: dual softmax at inference (CAMoE, Cheng et al. 2021). Each score is multiplied by a prior,
  the softmax of the logit-scaled scores over *every test query* for that gallery item. It needs all
  test queries at once, and a query's result depends on which other queries are in the test set
  (a repeated query halves its own prior). Both directions.
- `dsl_bank`: the single-query form of DSL: the prior's softmax runs over the query itself and a
  bank of *training* captions instead of the other test queries (the single-query setting of
  Yakovlev et al., SIGIR 2023). Text->video only (a video bank would be needed the other way).
- `qbnorm`: querybank normalisation with the dynamic inverted softmax (Bogolin et al., CVPR 2022),
  bank = training captions: a query whose top video is among the bank's top-k retrieved videos gets
  exp(beta * s) / sum over the bank of exp(beta * s_bank) (computed as its logarithm, same ranks);
  the others keep their raw scores. Single-query by construction. Text->video only.

Scores are computed in float64 from cosine similarities; `DSL_SCALE` turns them into CLIP logits.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from vop.errors import ConfigError
from vop.metrics.scores import metrics_from_scores

DSL_SCALE = 100.0  # cosine -> logits: CLIP's temperature at its clamp (ln 100), as CLIP4Clip/DGL dumps hold
QBNORM_K = 1       # qb-norm's defaults (dynamic_inverted_softmax.py), fixed: never tuned on test
QBNORM_BETA = 20.0
NEEDS_BANK = {"dsl_bank", "qbnorm"}


def dsl(scores: Tensor, bank: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(t2v [M, N], v2t [N, M]) dual-softmax scores from cosine `scores` [M, N]. CAMoE's constant
    factor (the number of queries) is left out: it changes no rank."""
    logits = DSL_SCALE * scores.double()  # [M, N]
    t2v = logits * torch.softmax(logits, dim=0)  # prior over the captions (queries) of each video
    v2t = (logits * torch.softmax(logits, dim=1)).T  # prior over the videos (queries) of each caption
    return t2v, v2t


def dsl_bank(scores: Tensor, bank: Tensor | None) -> tuple[Tensor, None]:
    """Single-query DSL: the prior of query q for video g is exp(l_qg) / (exp(l_qg) + sum_b exp(l_bg)),
    the bank `bank` [B, N] being training captions' cosine similarities to the same videos."""
    bank = _need_bank("dsl_bank", bank, scores)
    logits = DSL_SCALE * scores.double()  # [M, N]
    bank_lse = torch.logsumexp(DSL_SCALE * bank.double(), dim=0)  # [N]
    log_prior = logits - torch.logaddexp(logits, bank_lse[None, :])  # [M, N]
    return logits * log_prior.exp(), None


def qbnorm(scores: Tensor, bank: Tensor | None) -> tuple[Tensor, None]:
    """QB-Norm with the dynamic inverted softmax (k = QBNORM_K, beta = QBNORM_BETA), text->video."""
    bank = _need_bank("qbnorm", bank, scores)
    scores, bank = scores.double(), bank.double()
    activated = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)  # [N]
    activated[bank.topk(min(QBNORM_K, bank.shape[1]), dim=1).indices.flatten()] = True
    normalise = activated[scores.argmax(dim=1)]  # [M]: the query's top video was retrieved by the bank
    log_inverted = QBNORM_BETA * scores - torch.logsumexp(QBNORM_BETA * bank, dim=0)[None, :]  # [M, N]
    return torch.where(normalise[:, None], log_inverted, scores), None


def _need_bank(name: str, bank: Tensor | None, scores: Tensor) -> Tensor:
    if bank is None:
        raise ConfigError(f"post-processing {name} needs a bank of training captions' similarities to the test "
                         "videos (trainer.bank_captions > 0 when evaluating, or rescore.py bank=<file>)")
    if bank.ndim != 2 or bank.shape[1] != scores.shape[1] or bank.shape[0] == 0:
        raise ConfigError(f"{name}: the bank must be [B > 0, {scores.shape[1]} videos], got {tuple(bank.shape)}")
    return bank


POSTPROCESSING: dict[str, Callable[[Tensor, Tensor | None], tuple[Tensor | None, Tensor | None]]] = {
    "dsl": dsl, "dsl_bank": dsl_bank, "qbnorm": qbnorm}
SINGLE_QUERY = {"dsl": "dsl_bank", "qbnorm": "qbnorm"}  # each post-processing's single-query form


def check_names(names) -> list[str]:
    """The post-processing names, each known, in the given order; raises naming the known ones."""
    names = list(names or [])
    unknown = [n for n in names if n not in POSTPROCESSING]
    if unknown:
        raise ConfigError(f"unknown post-processing {unknown} (trainer.postprocess / rescore.py post=): expected "
                          f"some of {', '.join(POSTPROCESSING)}")
    return names


def postprocessed_metrics(scores: Tensor, text_video: Tensor, names, bank: Tensor | None = None) -> dict[str, float]:
    """`<name>/t2v_R@1 ...` (and `<name>/v2t_...` where defined) for each post-processing in `names`."""
    out: dict[str, float] = {}
    for name in check_names(names):
        t2v, v2t = POSTPROCESSING[name](scores, bank)
        out.update({f"{name}/{k}": v for k, v in metrics_from_scores(text_video, t2v, v2t).items()})
    return out
