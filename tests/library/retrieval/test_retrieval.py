"""Galleries, queries, indexes and result pages on the tiny model and small synthetic videos."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.helpers import SMALL_MODEL, SMALL_SYNTHETIC, compose_cfg, tiny_synthetic
from tests.mounts import grow, tmpfs
from vop.commands.retrieve import retrieve
from vop.data.annotations.common import AnnotationError
from vop.commands.train import train
from vop.engine.assembly import load_splits
from vop.errors import InputError
from vop.file_writes import umask
from vop.retrieval.gallery import Gallery, GalleryMismatchError, GalleryWriteError, build_gallery
from vop.retrieval.html import write_page
from vop.retrieval.pipeline import RetrievalPipeline
from vop.retrieval.query_encoder import Encoder
from vop.retrieval.views import result_view



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained tiny run (full fine-tuning from scratch) and its test metrics."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = tiny_synthetic("full", tmp, ["method.lr=3e-3", "method.lr_new=3e-3", "trainer.epochs=4",
                                       "trainer.eval_every_epoch=false", *SMALL_MODEL])
    return cfg, train(cfg), tmp


def retrieve_cfg(tmp: Path, data_dir: Path, overrides: list[str]):
    return compose_cfg("retrieve", ["data=synthetic", *overrides, f"paths.data_dir={data_dir}", *SMALL_SYNTHETIC], tmp)


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory):
    """A gallery of the run's test split, built through retrieve.py's code path with its checkpoint."""
    cfg, _, tmp = trained
    path = tmp_path_factory.mktemp("gallery") / "test.safetensors"
    overrides = ["action=build", f"gallery={path}", f"ckpt={cfg.paths.output_dir}", "chunk_videos=5"]
    retrieve(retrieve_cfg(path.parent, tmp / "data", overrides), overrides)
    return path


def test_gallery_queries_reproduce_the_runs_recall(trained, built):
    cfg, metrics, _ = trained
    pipeline = RetrievalPipeline.from_gallery(built, topk=3)
    gallery = pipeline.gallery
    assert gallery.encoder["method"] == "full" and gallery.encoder["ckpt"].endswith("checkpoint.safetensors")
    hits = 0
    for caption, owner in zip(gallery.captions, gallery.caption_video):
        result = pipeline(caption)
        assert result.mode == "t2v" and len(result.ids) == 3
        assert result.scores == sorted(result.scores, reverse=True)
        hits += result.ids[0] == gallery.video_ids[owner]
    # The evaluator's R@1 on the same videos and captions, recomputed through the gallery.
    assert hits == round(metrics["test/t2v_R@1"] * len(gallery.captions) / 100)
    assert hits >= 1, "the trained run should rank at least one caption's own video first"


def test_video_file_query_ranks_the_captions(built):
    pipeline = RetrievalPipeline.from_gallery(built, topk=4)
    gallery = pipeline.gallery
    row = 3
    result = pipeline(Path(gallery.video_paths[row]))
    assert result.mode == "v2t" and len(result.ids) == 4 and all(c in gallery.captions for c in result.ids)
    # The query video is a gallery video, so its embedding and hence its best caption score agree.
    expected = gallery.text_emb @ gallery.video_emb[row]  # [M]
    assert result.scores[0] == pytest.approx(expected.max().item(), abs=1e-5)
    assert result.ids[0] == gallery.captions[int(expected.argmax())]
    assert pipeline(gallery.video_paths[row]).mode == "v2t"  # a string naming a video file too
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        pipeline("missing.mp4")


def test_a_gallery_refuses_another_encoder(trained, built, tmp_path):
    cfg, _, tmp = trained
    # Same model and method, one tensor changed: only the weights fingerprint tells them apart.
    ckpt = Path(cfg.paths.output_dir) / "checkpoint.safetensors"
    with safe_open(str(ckpt), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01
    other = tmp_path / "other.safetensors"
    save_file(tensors, str(other), metadata=meta)
    with pytest.raises(GalleryMismatchError, match="fingerprint"):
        RetrievalPipeline.from_run(other, built)
    zeroshot = Encoder(retrieve_cfg(tmp_path, tmp / "data", ["model=clip_tiny", "method=zeroshot", *SMALL_MODEL]))
    with pytest.raises(GalleryMismatchError, match="method=zeroshot"):
        RetrievalPipeline(zeroshot, Gallery.load(built))


def test_build_resumes_from_finished_chunks(trained, built, tmp_path, monkeypatch):
    cfg, _, _ = trained
    encoder = Encoder.from_run(cfg.paths.output_dir)
    split = load_splits(encoder.cfg, "test")["test"]
    real = Encoder.encode_readable_chunks

    def interrupted(self, split, chunks, progress=False):
        for done, chunk in enumerate(real(self, split, chunks, progress)):
            if done == 2:
                raise KeyboardInterrupt
            yield chunk

    path = tmp_path / "g.safetensors"
    monkeypatch.setattr(Encoder, "encode_readable_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_gallery(encoder, split, path, chunk_videos=5, progress=False)
    assert len(list((tmp_path / "g.safetensors.parts").iterdir())) == 2 and not path.exists()
    calls = []
    monkeypatch.setattr(Encoder, "encode_readable_chunks", lambda self, s, chunks, progress=False:
                        calls.append(chunks) or real(self, s, chunks, progress))
    resumed = build_gallery(encoder, split, path, chunk_videos=5, progress=False)
    assert calls == [[range(10, 15), range(15, 16)]]  # 16 videos: chunks 0-5, 5-10 were reused
    assert torch.allclose(resumed.video_emb, Gallery.load(built).video_emb, atol=1e-6)
    assert not (tmp_path / "g.safetensors.parts").exists()


def test_folder_gallery_with_caption_file(trained, tmp_path):
    cfg, _, tmp = trained
    videos = sorted((tmp / "data").rglob("test/*.mp4"))[:3]
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    for i, v in enumerate(videos):
        (folder / ("sub" if i == 2 else "") / v.name).symlink_to(v)
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({videos[0].stem: "first", f"sub/{videos[2].stem}": ["a", "b"]}))
    overrides = ["action=build", f"gallery={tmp_path / 'g.safetensors'}", f"videos={folder}",
                 f"captions={captions}", f"ckpt={cfg.paths.output_dir}"]
    gallery = retrieve(retrieve_cfg(tmp_path, tmp / "data", overrides), overrides)
    assert gallery.video_ids == sorted([videos[0].stem, videos[1].stem, f"sub/{videos[2].stem}"])
    assert gallery.captions == ["first", "a", "b"] and gallery.text_emb.shape[0] == 3
    captions.write_text(json.dumps({"nope": "x"}))
    with pytest.raises(AnnotationError, match=r"captions.json line 1: 'nope'.*relative to videos="):
        retrieve(retrieve_cfg(tmp_path, tmp / "data", overrides), overrides)


def test_result_page_holds_every_query_and_its_thumbnails(built, tmp_path):
    pipeline = RetrievalPipeline.from_gallery(built, topk=3)
    gallery = pipeline.gallery
    results = [pipeline(gallery.captions[0]), pipeline(gallery.captions[5]), pipeline(Path(gallery.video_paths[2]))]
    views = [result_view(r, gallery, pipeline.encoder.decoder, thumb_frames=2) for r in results]
    html, png = write_page(views, tmp_path / "page.html")
    text = html.read_text()
    assert text.count('<section class="result">') == 3
    for r in results:
        assert r.query in text
    # 2 t2v queries x 3 hits x 2 frames, plus the v2t query's own 2 frames; all inlined.
    assert text.count('<img class="thumb"') == 14 == text.count("data:image/jpeg;base64,")
    assert "http" not in text and png.stat().st_size > 1000
    # Ground truth: the caption's own video is marked whenever it is among the hits.
    own = gallery.video_ids[gallery.caption_video[0]]
    assert (own in results[0].ids) == views[0].hits[[h.label for h in views[0].hits].index(own)].is_gt \
        if own in results[0].ids else not any(h.is_gt for h in views[0].hits)


def test_eval_examples_page(trained, built, tmp_path):
    """`eval.py examples=3`: three evenly spaced captions, each with its top 5 videos, the caption's own
    video marked wherever it is among them (expected from the run's gallery of the same split)."""
    cfg, _, tmp = trained
    from vop.commands.eval import evaluate_run

    overrides = [f"ckpt={cfg.paths.output_dir}", "examples=3"]
    evaluate_run(compose_cfg("eval", overrides, tmp_path), overrides)
    text = (tmp_path / "run" / "examples.html").read_text()
    gallery = Gallery.load(built)
    last = len(gallery.captions) - 1
    queries = [0, round(last / 2), last]
    top5 = (gallery.text_emb[queries] @ gallery.video_emb.T).topk(5).indices  # [3, 5]
    own = sum(gallery.caption_video[q] in row.tolist() for q, row in zip(queries, top5))
    assert own >= 1, "the trained run should rank some query's own video in its top 5"
    assert text.count('<section class="result">') == 3 and text.count('class="hit gt"') == own
    assert all(gallery.captions[q] in text for q in queries)
    assert (tmp_path / "run" / "examples.png").is_file()


def test_a_gallery_into_a_read_only_folder_is_refused_before_the_model_loads(trained, tmp_path, monkeypatch):
    cfg, _, tmp = trained
    monkeypatch.setattr(Encoder, "__init__", lambda *a, **k: pytest.fail("the model loaded"))
    with tmpfs(tmp_path / "ro", 64, read_only=True) as folder:
        overrides = ["action=build", f"gallery={folder / 'sub' / 'g.safetensors'}", f"ckpt={cfg.paths.output_dir}"]
        with pytest.raises(InputError, match=rf"gallery={folder}/sub/g.safetensors: cannot write into {folder} "
                                             r"\(Read-only file system\)"):
            retrieve(retrieve_cfg(tmp_path, tmp / "data", overrides), overrides)


def test_a_full_disk_during_a_build_says_what_was_kept_and_the_rebuild_reuses_it(trained, built, tmp_path,
                                                                                  monkeypatch):
    """A real 8 KiB file system (two 4 KiB pages): the first two 5-video chunks fit, the third does not;
    with room made (the file system grown), the same build encodes only the chunks that were not kept."""
    cfg, _, _ = trained
    encoder = Encoder.from_run(cfg.paths.output_dir)
    split = load_splits(encoder.cfg, "test")["test"]
    with tmpfs(tmp_path / "small", 8) as folder:
        path, parts = folder / "g.safetensors", folder / "g.safetensors.parts"
        with pytest.raises(GalleryWriteError) as err:
            build_gallery(encoder, split, path, chunk_videos=5, progress=False)
        kept = sorted(parts.iterdir())
        assert len(kept) == 2 and all(p.name.startswith("videos_") for p in kept)  # no temporary file left
        assert re.fullmatch(rf"gallery={path}: could not write {folder}/\S+: the disk is full \(ENOSPC\); "
                            rf"{len(kept)} finished chunks are kept in {parts}, and the same build run again reuses "
                            "them", str(err.value)), str(err.value)
        grow(folder, 1024)
        calls = []
        real = Encoder.encode_readable_chunks
        monkeypatch.setattr(Encoder, "encode_readable_chunks", lambda self, s, chunks, progress=False:
                            calls.append(chunks) or real(self, s, chunks, progress))
        gallery = build_gallery(encoder, split, path, chunk_videos=5, progress=False)
        assert calls == [[range(10, 15), range(15, 16)]]  # 16 videos in 4 chunks; the first two were kept
        assert torch.allclose(gallery.video_emb, Gallery.load(built).video_emb, atol=1e-6)
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask())
