"""The authors' ModelScope model folder as a search pipeline and an evaluation target, on a tiny
folder built the way ModelScope lays it out (tests/released_fakes.py makes the checkpoint)."""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_synthetic
from tests.released_fakes import (RELEASED_TEXT_LEN, TINY, ModelScopeSeries, ModelScopeVoP, evaluation_frames,
                                  openai_clip, plain_test_metrics, plain_text_features, plain_video_features,
                                  save_released)
from vop.commands.eval import evaluate_run
from vop.commands.retrieve import retrieve
from vop.data.tokenizer import find_bpe_file, openai_bpe_tokenizer, tokenize
from vop.engine import assembly
from vop.engine.modelscope_folder import ModelScopeFolder, ModelScopeFolderError
from vop.retrieval.pipeline import RetrievalPipeline

HYPER = {"num_frames": 4, "input_res": 224, "vp_token_num": 8, "tp_prefix_token_num": 4, "tp_suffix_token_num": 4,
         "pooling_type": "avg", "video_sample_type": "uniform", "topk": 3, "seed": 24}
QUERY = "a red circle moves to the left"
PIPELINE = ["model=clip_tiny", "trainer.progress=false", "data.num_workers=0"]
# What HYPER asks of the frames, stated here (not read from the folder): the reference decodes these.
HYPER_FRAMES = [f"data.num_frames={HYPER['num_frames']}", f"data.test_sampling=xpool_{HYPER['video_sample_type']}"]
HEADS = TINY.text.num_attention_heads


def make_folder(folder: Path, module, weights: str, hyper: dict = HYPER, gallery: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration.json").write_text(json.dumps({"framework": "pytorch", "task": "vop-retrieval",
                                                           "hyperparam": hyper}))
    save_released(module, folder / weights)
    shutil.copy(find_bpe_file(), folder / "bpe_simple_vocab_16e6.txt.gz")
    if gallery is not None:
        torch.save(gallery, folder / f"{Path(weights).stem}_features.pkl")
    return folder


@dataclass
class VoPFolder:
    path: Path
    module: ModelScopeVoP  # the model the folder's checkpoint was saved from
    gallery: dict  # its *_features.pkl


@pytest.fixture(scope="module")
def vop(tmp_path_factory) -> VoPFolder:
    """A VoP folder whose gallery's video 7 is the reference feature of QUERY (so it must rank first)."""
    module = ModelScopeVoP(openai_clip())
    gen = torch.Generator().manual_seed(0)
    videos = torch.nn.functional.normalize(torch.randn(10, TINY.projection_dim, generator=gen), dim=-1)
    videos[7] = plain_text_features(module, query_ids(QUERY), HEADS, "released")[0]
    texts = torch.nn.functional.normalize(torch.randn(10, TINY.projection_dim, generator=gen), dim=-1)
    gallery = {"text_embeds": texts, "vid_embeds": videos, "vid_ids": [f"video{i}" for i in range(7000, 7010)],
               "texts": [f"caption {i}" for i in range(10)]}
    path = make_folder(tmp_path_factory.mktemp("modelscope") / "cv_vit-b32_retrieval_vop", module,
                       "VoP_msrvtt9k.pth", gallery=gallery)
    return VoPFolder(path, module, gallery)


def query_ids(text: str) -> torch.Tensor:
    """A caption as the released code tokenises it: 69 slots."""
    return tokenize(openai_bpe_tokenizer(), [text], RELEASED_TEXT_LEN)  # [1, 69]


def test_the_folder_picks_method_and_settings(vop):
    spec = ModelScopeFolder.read(vop.path)
    assert spec.method == "vop" and spec.topk == 3
    assert spec.settings["method.tuner.readout"] == "released" and spec.settings["method.max_text_len"] == 69
    assert spec.settings["data.num_frames"] == 4 and spec.settings["data.test_sampling"] == "xpool_uniform"


def test_text_query_ranks_the_gallery_videos(vop):
    pipeline = RetrievalPipeline.from_modelscope(vop.path, PIPELINE)
    result = pipeline(QUERY)
    assert result.mode == "t2v" and len(result.ids) == 3 and result.ids[0] == "video7007"
    assert result.scores[0] == pytest.approx(1.0, abs=1e-5)  # the reference feature, found through the folder path
    assert result.scores == sorted(result.scores, reverse=True)


def test_retrieve_text_query_scores_are_the_released_models(vop, tmp_path, capsys):
    """`retrieve.py modelscope=<folder> query=<text>`: the folder's top 3 by the plain forward's feature."""
    overrides = [f"modelscope={vop.path}", f"query={QUERY}", *PIPELINE]
    (result,) = retrieve(tiny_synthetic("zeroshot", tmp_path, overrides, config_name="retrieve"), overrides)
    expected = (plain_text_features(vop.module, query_ids(QUERY), HEADS, "released") @ vop.gallery["vid_embeds"].T)[0]
    top = expected.topk(3)  # [3]
    assert result.mode == "t2v" and result.ids == [f"video{7000 + i}" for i in top.indices.tolist()]
    assert result.scores == pytest.approx(top.values.tolist(), abs=1e-5)
    assert "video7007" in capsys.readouterr().out


def test_retrieve_video_query_scores_are_the_released_models(vop, tmp_path, capsys):
    """`retrieve.py modelscope=<folder> query=<video>`: the captions ranked by the plain forward of the
    video's frames as the folder's settings sample them (4 frames, X-Pool's uniform rule)."""
    reference = tiny_synthetic("zeroshot", tmp_path, [*HYPER_FRAMES, *PIPELINE], config_name="retrieve")
    query = assembly.load_splits(reference, "test")["test"].subset([0])
    overrides = [f"modelscope={vop.path}", f"query={query.video_paths[0]}", *PIPELINE]
    (result,) = retrieve(tiny_synthetic("zeroshot", tmp_path, overrides, config_name="retrieve"), overrides)
    video = plain_video_features(vop.module, evaluation_frames(reference, query), HEADS)  # [1, D]
    top = (video @ vop.gallery["text_embeds"].T)[0].topk(3)
    assert result.mode == "v2t" and result.ids == [f"caption {i}" for i in top.indices.tolist()]
    assert result.scores == pytest.approx(top.values.tolist(), abs=1e-5)
    assert "caption" in capsys.readouterr().out


def test_result_page_of_a_modelscope_query(vop, tmp_path):
    """The gallery holds ids only (no videos here): the page shows the ranked ids without thumbnails."""
    page = tmp_path / "page.html"
    overrides = [f"modelscope={vop.path}", f"query={QUERY}", f"html={page}", *PIPELINE]
    retrieve(tiny_synthetic("zeroshot", tmp_path, overrides, config_name="retrieve"), overrides)
    assert "video7007" in page.read_text()


def test_eval_of_the_folder_gives_the_released_models_metrics(vop, tmp_path):
    """`eval.py modelscope=<folder>`: the metrics of the plain forward of the folder's model, on the
    frames its settings sample, with its read-out."""
    overrides = [f"modelscope={vop.path}"]
    cfg = tiny_synthetic("zeroshot", tmp_path, overrides, config_name="eval")
    metrics = evaluate_run(cfg, overrides=overrides)
    reference = tiny_synthetic("zeroshot", tmp_path, HYPER_FRAMES, config_name="eval")
    assert metrics == pytest.approx(plain_test_metrics(vop.module, reference, "released"), abs=1e-9)
    saved = (Path(cfg.paths.output_dir) / "config.yaml").read_text()
    assert "readout: released" in saved and "name: vop" in saved


def test_series_folder_is_a_tuned_clip(tmp_path):
    clip = openai_clip(seed=5)
    hyper = {k: v for k, v in HYPER.items() if not k.startswith(("vp_", "tp_"))}
    folder = make_folder(tmp_path / "cv_vit-b32_retrieval_vop_bias", ModelScopeSeries(clip), "VoPSE_msrvtt9k.pth",
                         hyper, gallery={"text_embeds": torch.randn(2, 64), "vid_embeds": torch.randn(2, 64),
                                         "vid_ids": ["a", "b"], "texts": ["x", "y"]})
    pipeline = RetrievalPipeline.from_modelscope(folder, PIPELINE)
    ids = tokenize(openai_bpe_tokenizer(), [QUERY], 77)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.encode_text(ids), dim=-1)
    torch.testing.assert_close(pipeline.encoder.encode_texts([QUERY]), expected, atol=1e-4, rtol=0)


class Arbitrary:
    """Any class: unpickling it would run code the file chooses."""


@pytest.mark.parametrize("field,value", [("pooling_type", "transformer"), ("use_temporal_transformer", True)])
def test_a_field_this_project_cannot_honour_is_named(tmp_path, field, value):
    folder = make_folder(tmp_path / "f", ModelScopeSeries(openai_clip()), "VoPSE_msrvtt9k.pth", {**HYPER, field: value})
    with pytest.raises(ModelScopeFolderError, match=f"hyperparam.{field}"):
        ModelScopeFolder.read(folder)


def test_a_features_file_needing_arbitrary_objects_is_refused(tmp_path):
    folder = make_folder(tmp_path / "f", ModelScopeSeries(openai_clip()), "VoPSE_msrvtt9k.pth",
                         gallery={"text_embeds": torch.zeros(1, 64), "vid_embeds": torch.zeros(1, 64),
                                  "vid_ids": [Arbitrary()], "texts": ["x"]})
    with pytest.raises(ModelScopeFolderError, match="VoPSE_msrvtt9k_features.pkl: refused"):
        RetrievalPipeline.from_modelscope(folder, PIPELINE)
