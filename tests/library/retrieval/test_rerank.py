"""A gallery of a text-conditioned pooling (method=xpool): format 2 keeps the frame embeddings, and a
query runs in two stages (mean-pooled shortlist of rerank_k, re-ranked by the query's pooling)."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import SMALL_MODEL, SMALL_SYNTHETIC, compose_cfg, tiny_synthetic
from vop.commands.retrieve import retrieve
from vop.commands.train import train
from vop.errors import InputError
from vop.models.clip import mean_pool
from vop.retrieval.gallery import FORMAT, FORMAT_FRAMES, Gallery
from vop.retrieval.pipeline import RetrievalPipeline



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xpool")
    cfg = tiny_synthetic("xpool", tmp, ["method.lr=3e-3", "method.lr_new=3e-3", "trainer.epochs=2",
                                        "trainer.eval_every_epoch=false", *SMALL_MODEL])
    return cfg, train(cfg), tmp


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory):
    cfg, _, tmp = trained
    path = tmp_path_factory.mktemp("gallery") / "xpool.safetensors"
    overrides = ["action=build", f"gallery={path}", f"ckpt={cfg.paths.output_dir}", "chunk_videos=5"]
    retrieve(compose_cfg("retrieve", ["data=synthetic", *overrides, f"paths.data_dir={tmp / 'data'}",
                                      *SMALL_SYNTHETIC], path.parent), overrides)
    return path


def test_the_gallery_keeps_the_frames_and_their_mean(trained, built):
    cfg, _, _ = trained
    gallery = Gallery.load(built)
    assert gallery.frame_emb.shape == (16, cfg.data.num_frames, 64)
    torch.testing.assert_close(gallery.video_emb, mean_pool(gallery.frame_emb), rtol=0, atol=1e-6)
    with open(built, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["__metadata__"]["format"] == FORMAT_FRAMES != FORMAT  # a format-1 reader refuses it by name


def test_exhaustive_search_reproduces_the_runs_recall_and_two_stage_stays_within_its_shortlist(trained, built):
    _, metrics, _ = trained
    exhaustive = RetrievalPipeline.from_gallery(built, topk=5, rerank_k=0)
    gallery, model = exhaustive.gallery, exhaustive.encoder.model
    hits = 0
    for caption, owner in zip(gallery.captions, gallery.caption_video):
        result = exhaustive(caption)
        hits += result.ids[0] == gallery.video_ids[owner]
        with torch.inference_mode():  # the same caption pooling every video: the evaluator's scores
            scores = model.similarity(exhaustive.encoder.encode_texts([caption]), gallery.frame_emb)[0]
        assert result.rows == scores.topk(5).indices.tolist()
    # The evaluator's R@1 (every caption pools every video), recomputed through the gallery.
    assert hits == round(metrics["test/t2v_R@1"] * len(gallery.captions) / 100)

    for k in (3, 16, 100):
        two_stage = RetrievalPipeline.from_gallery(built, topk=3, rerank_k=k)
        for caption in gallery.captions[:6]:
            text = two_stage.encoder.encode_texts([caption])
            shortlist = set((text @ gallery.video_emb.T)[0].topk(min(k, 16)).indices.tolist())
            result = two_stage(caption)
            assert set(result.rows) <= shortlist and result.scores == sorted(result.scores, reverse=True)
            if k >= 16:  # a shortlist of every video is the exhaustive ranking
                assert result.rows == exhaustive(caption, topk=3).rows


def test_a_video_query_is_pooled_by_every_caption(built):
    pipeline = RetrievalPipeline.from_gallery(built, topk=4)
    gallery = pipeline.gallery
    result = pipeline(Path(gallery.video_paths[2]))
    with torch.inference_mode():
        expected = pipeline.encoder.model.similarity(gallery.text_emb, gallery.frame_emb[2:3])[:, 0]  # [M]
    assert result.ids[0] == gallery.captions[int(expected.argmax())]
    assert result.scores[0] == pytest.approx(expected.max().item(), abs=1e-5)


def test_a_gallery_without_frames_is_refused_for_a_text_conditioned_encoder(built):
    pipeline = RetrievalPipeline.from_gallery(built)
    gallery = Gallery.load(built)
    gallery.frame_emb = None
    with pytest.raises(InputError, match="holds no frame embeddings.*method=xpool.*rebuild"):
        RetrievalPipeline(pipeline.encoder, gallery)
    with pytest.raises(InputError, match="rerank_k=-1"):
        RetrievalPipeline(pipeline.encoder, Gallery.load(built), rerank_k=-1)


def rewrite(src: Path, dst: Path, fmt: str, drop: str | None = None) -> Path:
    """The gallery's tensors under another format name (or without one tensor)."""
    from safetensors import safe_open
    with safe_open(str(src), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys() if k != drop}, f.metadata()
    save_file(tensors, str(dst), metadata={**meta, "format": fmt})
    return dst


def test_the_header_is_checked_before_the_contents(built, tmp_path, monkeypatch):
    import vop.retrieval.gallery as gallery_module
    opened = []
    monkeypatch.setattr(gallery_module, "safe_open", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(
        AssertionError("tensors read before the header was checked")))
    with pytest.raises(InputError, match="format vop-gallery-4, written by a newer vop.*upgrade"):
        Gallery.load(rewrite(built, tmp_path / "newer.safetensors", "vop-gallery-4"))
    with pytest.raises(InputError, match="holds tensors.*its format holds.*spans"):  # moments without their spans
        Gallery.load(rewrite(built, tmp_path / "v3.safetensors", "vop-gallery-3"))
    with pytest.raises(InputError, match="holds tensors.*its format holds"):
        Gallery.load(rewrite(built, tmp_path / "v1.safetensors", FORMAT))  # format 1 with frames
    with pytest.raises(InputError, match="holds tensors.*its format holds"):
        Gallery.load(rewrite(built, tmp_path / "noframes.safetensors", FORMAT_FRAMES, drop="frame_emb"))
    with pytest.raises(InputError, match="is not a vop gallery"):
        Gallery.load(rewrite(built, tmp_path / "other.safetensors", "something-else"))
    assert not opened


def test_eval_reproduces_the_runs_metrics_and_its_examples_page_ranks_with_the_pooling(trained, built, tmp_path):
    cfg, metrics, _ = trained
    from vop.commands.eval import evaluate_run

    overrides = [f"ckpt={cfg.paths.output_dir}", "examples=3"]
    again = evaluate_run(compose_cfg("eval", overrides, tmp_path), overrides)
    assert {k: v for k, v in again.items() if "_R@" in k or "MdR" in k} == \
        {k: v for k, v in metrics.items() if k.startswith("test/") and ("_R@" in k or "MdR" in k) and "chance" not in k}
    text = (tmp_path / "run" / "examples.html").read_text()
    pipeline = RetrievalPipeline.from_gallery(built)
    gallery = pipeline.gallery
    last = len(gallery.captions) - 1
    queries = [0, round(last / 2), last]
    with torch.inference_mode():
        top5 = pipeline.encoder.model.similarity(gallery.text_emb[queries], gallery.frame_emb).topk(5).indices
    own = sum(gallery.caption_video[q] in row.tolist() for q, row in zip(queries, top5))
    assert text.count('<section class="result">') == 3 and text.count('class="hit gt"') == own


def test_the_run_saves_the_pooled_score_matrix(trained, built):
    """The run folder's similarity.safetensors is the caption-pooled matrix the metrics ranked (not the
    mean-pooled one), so rescore.py post-processes what X-Pool evaluates."""
    from vop.metrics.scores import metrics_from_scores
    from vop.metrics.similarity_file import FILENAME, read_similarity

    cfg, metrics, _ = trained
    saved = read_similarity(Path(cfg.paths.output_dir) / FILENAME)
    pipeline = RetrievalPipeline.from_gallery(built)
    gallery = pipeline.gallery
    with torch.inference_mode():
        pooled = pipeline.encoder.model.similarity(gallery.text_emb, gallery.frame_emb)  # [M, N]
    torch.testing.assert_close(saved.scores, pooled, rtol=0, atol=1e-5)
    assert not torch.allclose(saved.scores, gallery.text_emb @ gallery.video_emb.T, atol=1e-3)
    again = metrics_from_scores(saved.text_video, saved.scores, saved.scores.T)
    assert again["t2v_R@1"] == metrics["test/t2v_R@1"] and again["v2t_R@1"] == metrics["test/v2t_R@1"]
