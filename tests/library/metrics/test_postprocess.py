"""DSL, single-query DSL and QB-Norm against float64 numpy written from the papers, and DSL's
dependence on the other test queries (CAMoE issue 7: a repeated query changes its own result)."""
import numpy as np
import pytest
import torch

from vop.metrics.postprocess import QBNORM_BETA, QBNORM_K, check_names, dsl, dsl_bank, postprocessed_metrics, qbnorm
from vop.metrics.scores import metrics_from_scores, t2v_ranks_from_scores


def cosine(rows: int, cols: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(rows, dim)), rng.normal(size=(cols, dim))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def problem(seed: int):
    """30 captions of 10 videos (3 each, so video->text groups captions), a 40-caption bank."""
    rng = np.random.default_rng(seed)
    text_video = np.repeat(np.arange(10), 3)
    sims = cosine(30, 10, 8, seed) + 0.3 * np.eye(10)[text_video]  # [30, 10] a little signal
    bank = cosine(40, 10, 8, seed + 100) + 0.2 * rng.normal(size=(40, 10))
    return sims, text_video, bank


def ref_t2v_ranks(scores: np.ndarray, text_video: np.ndarray) -> list[int]:
    return [int(sum(scores[q, g] > scores[q, text_video[q]] for g in range(scores.shape[1])))
            for q in range(scores.shape[0])]


def ref_v2t_ranks(scores: np.ndarray, text_video: np.ndarray) -> list[int]:
    """scores [N videos, M captions]; every gallery video counts with its best caption."""
    ranks = []
    for v in range(scores.shape[0]):
        best = [max(scores[v, c] for c in range(scores.shape[1]) if text_video[c] == u) for u in range(scores.shape[0])]
        ranks.append(int(sum(b > best[v] for b in best)))
    return ranks


def ref_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_dsl(sims: np.ndarray):
    """CAMoE: sim * softmax(sim / temp, over the queries) * #queries, temp 1 at inference, on logits."""
    logits = 100.0 * sims
    t2v = logits * ref_softmax(logits, axis=0) * logits.shape[0]
    v2t = (logits * ref_softmax(logits, axis=1)).T * logits.shape[1]
    return t2v, v2t


def ref_qbnorm(sims: np.ndarray, bank: np.ndarray, k: int, beta: float) -> np.ndarray:
    """Bogolin et al.: the bank's top-k videos form the activation set; a query whose top-1 video is in
    it is scored exp(beta s) / sum_bank exp(beta s_bank), the others keep their similarities."""
    activated = {int(g) for row in bank for g in np.argsort(-row, kind="stable")[:k]}
    out = sims.copy()
    for q in range(sims.shape[0]):
        if int(np.argmax(sims[q])) in activated:
            out[q] = np.exp(beta * sims[q]) / np.exp(beta * bank).sum(axis=0)
    return out


def ref_dsl_bank(sims: np.ndarray, bank: np.ndarray) -> np.ndarray:
    logits, bank_logits = 100.0 * sims, 100.0 * bank
    out = np.empty_like(sims)
    for q in range(sims.shape[0]):
        column = np.vstack([logits[q:q + 1], bank_logits])  # the query and the bank, nothing else of the test set
        out[q] = logits[q] * ref_softmax(column, axis=0)[0]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dsl_matches_the_reference_both_ways(seed):
    sims, text_video, _ = problem(seed)
    ref_t2v, ref_v2t = ref_dsl(sims)
    t2v, v2t = dsl(torch.tensor(sims, dtype=torch.float32))
    tv = torch.tensor(text_video)
    assert t2v_ranks_from_scores(t2v, tv).tolist() == ref_t2v_ranks(ref_t2v, text_video)
    from vop.metrics.scores import v2t_ranks_from_scores
    assert v2t_ranks_from_scores(v2t, tv).tolist() == ref_v2t_ranks(ref_v2t, text_video)
    np.testing.assert_allclose(t2v.numpy() * sims.shape[0], ref_t2v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qbnorm_and_single_query_dsl_match_the_reference(seed):
    sims, text_video, bank = problem(seed)
    s, b, tv = torch.tensor(sims), torch.tensor(bank), torch.tensor(text_video)
    assert t2v_ranks_from_scores(qbnorm(s, b)[0], tv).tolist() == \
        ref_t2v_ranks(ref_qbnorm(sims, bank, QBNORM_K, QBNORM_BETA), text_video)
    assert t2v_ranks_from_scores(dsl_bank(s, b)[0], tv).tolist() == ref_t2v_ranks(ref_dsl_bank(sims, bank), text_video)
    assert qbnorm(s, b)[1] is None and dsl_bank(s, b)[1] is None  # no video bank: no video->text form


def test_post_processing_changes_ranks_and_is_reported_under_its_own_name():
    """A hub video close to every caption: DSL and QB-Norm demote it, so their R@1 beats the raw one."""
    rng = np.random.default_rng(3)
    text_video = np.repeat(np.arange(10), 3)
    sims = 0.05 * rng.normal(size=(30, 10)) + 0.3 * np.eye(10)[text_video]  # each caption near its video
    bank = 0.05 * rng.normal(size=(40, 10))
    sims[:, 0] += 0.4  # but video 0 is every caption's nearest
    bank[:, 0] += 0.4  # and the training captions' too
    tv = torch.tensor(text_video)
    raw = metrics_from_scores(tv, torch.tensor(sims), torch.tensor(sims).T)
    post = postprocessed_metrics(torch.tensor(sims), tv, ["dsl", "qbnorm", "dsl_bank"], torch.tensor(bank))
    assert set(post) == {f"dsl/{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")} | \
        {f"{n}/t2v_{m}" for n in ("qbnorm", "dsl_bank") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")}
    assert raw["t2v_R@1"] <= 100 / 3 + 1e-9  # the hub takes rank 0 for all but its own three captions
    assert post["dsl/t2v_R@1"] > raw["t2v_R@1"] and post["qbnorm/t2v_R@1"] > raw["t2v_R@1"]
    with pytest.raises(ValueError, match="needs a bank"):
        postprocessed_metrics(torch.tensor(sims), tv, ["qbnorm"])
    with pytest.raises(ValueError, match="unknown post-processing"):
        check_names(["dsl", "sinkhorn"])


def test_dsl_result_of_a_query_depends_on_the_other_test_queries():
    """CAMoE issue 7: DSL's prior is a softmax over the test queries, so repeating a query changes that
    query's own ranking; raw and single-query (bank) scores look at no other test query and do not move."""
    sims = np.array([[0.42, 0.34, 0.11],   # caption 0 of video 0: raw rank 0
                     [0.41, 0.22, 0.43],   # caption 1 (video 1) competes for video 0
                     [0.21, 0.10, 0.22]])
    repeated = np.vstack([sims, sims[:1]])  # caption 0 asked twice
    tv, tv_rep = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2, 0])
    once, twice = torch.tensor(sims), torch.tensor(repeated)
    assert t2v_ranks_from_scores(once, tv)[0] == 0 and t2v_ranks_from_scores(twice, tv_rep)[0] == 0
    assert t2v_ranks_from_scores(dsl(once)[0], tv)[0] == 1   # alone, DSL pushes video 0 down for caption 0
    assert t2v_ranks_from_scores(dsl(twice)[0], tv_rep)[0] == 0  # repeated, its prior halves everywhere: rank 0
    bank = torch.tensor(cosine(20, 3, 4, seed=5))
    alone, with_copy = dsl_bank(once, bank)[0], dsl_bank(twice, bank)[0]
    assert torch.equal(alone[0], with_copy[0]) and torch.equal(with_copy[0], with_copy[3])
