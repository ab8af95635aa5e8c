"""method=xpool: X-Pool's text-conditioned pooling against an independent float64 reference written
from the paper / released code's structure (plain torch, one caption and one video at a time), its
loss, its chunked evaluation, and its ranks."""
import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import tiny_synthetic
from vop.commands.train import train
from vop.engine.assembly import build_model
from vop.losses import info_nce_scores
from vop.methods.xpool import TextConditionedPooling, XPoolHooks
from vop.retrieval.query_encoder import Encoder

D, HEADS = 8, 2


def layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def reference_pool(p: dict, text: torch.Tensor, frames: torch.Tensor, heads: int) -> torch.Tensor:
    """One caption text [D] pools one video frames [T, D] -> [D], X-Pool's transformer (eval: no dropout).

    Query from the caption, keys and values from the frames (after a shared LayerNorm), softmax over
    frames per head, output projection, LayerNorm, residual linear, LayerNorm."""
    lin = lambda x, name: x @ p[name + ".weight"].T + p[name + ".bias"]  # noqa: E731
    ln = lambda x, name: layer_norm(x, p[name + ".weight"], p[name + ".bias"])  # noqa: E731
    t, f = ln(text, "layer_norm1"), ln(frames, "layer_norm1")
    q, k, v = lin(t, "q_proj"), lin(f, "k_proj"), lin(f, "v_proj")  # [D], [T, D], [T, D]
    d = text.shape[0] // heads
    per_head = []
    for h in range(heads):
        s = slice(h * d, (h + 1) * d)
        weights = torch.softmax(k[:, s] @ q[s] / math.sqrt(d), dim=0)  # [T]: attention over the frames
        per_head.append(weights @ v[:, s])  # [d]
    a = ln(lin(torch.cat(per_head), "out_proj"), "layer_norm2")
    return ln(a + lin(a, "linear_proj"), "layer_norm3")


def reference_scores(p, text, frames, heads):
    """[M, N]: cosine of caption m and video n pooled by caption m."""
    return torch.stack([torch.stack([F.cosine_similarity(text[m], reference_pool(p, text[m], frames[n], heads), dim=0)
                                     for n in range(frames.shape[0])]) for m in range(text.shape[0])])


def random_head(seed=0) -> TextConditionedPooling:
    """The head with random (not identity) weights, so every projection matters, in float64."""
    head = TextConditionedPooling(D, HEADS, dropout=0.3).double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in head.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64) * 0.5 + (param.ndim == 1))
    return head


def inputs(m=5, n=4, t=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(m, D, generator=gen, dtype=torch.float64), dim=-1),
            F.normalize(torch.randn(n, t, D, generator=gen, dtype=torch.float64), dim=-1))


def test_pooling_equals_the_float64_reference():
    head = random_head()
    text, frames = inputs()
    params = {k: v.detach() for k, v in head.named_parameters()}
    with torch.no_grad():
        pooled = head(text, frames)  # [N, M, D]
    assert pooled.shape == (4, 5, D)
    for n in range(4):
        for m in range(5):
            torch.testing.assert_close(pooled[n, m], reference_pool(params, text[m], frames[n], HEADS),
                                       rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
def test_scores_equal_the_reference_in_any_chunk_size(chunk):
    hooks = XPoolHooks(D, HEADS, dropout=0.3, eval_chunk=chunk).double().eval()
    hooks.pool = random_head()
    text, frames = inputs()
    params = {k: v.detach() for k, v in hooks.pool.named_parameters()}
    with torch.no_grad():
        torch.testing.assert_close(hooks.similarity(text, frames), reference_scores(params, text, frames, HEADS),
                                   rtol=0, atol=1e-12)


def test_a_videos_embedding_depends_on_the_caption_and_the_fresh_head_is_identity_projections():
    fresh = TextConditionedPooling(D, 1).eval()
    assert all(torch.equal(layer.weight, torch.eye(D)) for layer in (fresh.q_proj, fresh.k_proj, fresh.v_proj,
                                                                     fresh.out_proj, fresh.linear_proj))
    text, frames = inputs(m=2, n=1)
    with torch.no_grad():
        pooled = fresh(text.float(), frames.float())[0]  # [2 captions, D]
    assert not torch.allclose(pooled[0], pooled[1], atol=1e-3)


def test_the_loss_scores_each_caption_against_each_video_pooled_by_it():
    head = random_head()
    text, frames = inputs(m=4, n=4)
    params = {k: v.detach() for k, v in head.named_parameters()}
    hooks = XPoolHooks(D, HEADS, 0.3, eval_chunk=1).double().eval()
    hooks.pool = head
    scale = torch.tensor(math.log(20.0), dtype=torch.float64)
    ours = info_nce_scores(hooks.similarity(text, frames), scale)
    # X-Pool's CLIPLoss on the reference scores: -diag(log_softmax) along rows and along columns.
    logits = reference_scores(params, text, frames, HEADS) * 20.0
    theirs = -(torch.diagonal(logits.log_softmax(1)).mean() + torch.diagonal(logits.log_softmax(0)).mean()) / 2
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-6, atol=1e-6)


def test_training_and_evaluation_run_and_the_head_and_clip_train(tmp_path):
    cfg = tiny_synthetic("xpool", tmp_path, ["method.lr=1e-3", "method.lr_new=1e-2", "scheduler.warmup_ratio=0",
                                             "trainer.max_steps_per_epoch=2"])
    model, _, _, count = build_model(cfg)
    assert model.text_conditioned and count.trainable == count.total
    head_before = {n: p.detach().clone() for n, p in model.hooks.named_parameters()}
    clip_before = {n: p.detach().clone() for n, p in model.clip.named_parameters()}
    metrics = train(cfg)
    after = Encoder.from_run(cfg.paths.output_dir).model
    assert all(not torch.equal(p, head_before[n]) for n, p in after.hooks.named_parameters())
    assert sum(not torch.equal(p, clip_before[n]) for n, p in after.clip.named_parameters()) > len(clip_before) // 2
    assert 0 <= metrics["test/t2v_R@1"] <= metrics["test/t2v_R@5"] <= metrics["test/t2v_R@10"] <= 100


def test_prepared_videos_score_as_the_frames_do():
    """A gallery's keys and values computed once, then any rows of it: the same scores as pooling those frames."""
    hooks = XPoolHooks(D, HEADS, dropout=0.3, eval_chunk=2).double().eval()
    hooks.pool = random_head()
    text, frames = inputs(m=3, n=6)
    rows = torch.tensor([4, 0, 5])
    with torch.no_grad():
        prepared = hooks.prepare_videos(frames)
        torch.testing.assert_close(hooks.score_prepared(text, prepared, rows), hooks.similarity(text, frames[rows]),
                                   rtol=0, atol=1e-12)
        torch.testing.assert_close(hooks.score_prepared(text, prepared), hooks.similarity(text, frames),
                                   rtol=0, atol=1e-12)
