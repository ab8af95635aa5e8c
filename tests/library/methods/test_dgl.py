"""DGL computes what the authors' released code computes: checked against an independent float64 forward
(tests/dgl_fakes.py) on files laid out as their main.py saves them; eval.py and train.py run it."""
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.dgl_fakes import TINY, ReleasedDGL, reference_metrics, reference_text, reference_video, save_dgl_checkpoint
from tests.released_fakes import every_eot_position, evaluation_frames
from tests.helpers import SMALL_SYNTHETIC, compose_cfg, method_config, tiny_synthetic
from vop.commands.eval import evaluate_run
from vop.commands.retrieve import retrieve
from vop.commands.train import train
from vop.data.tokenizer import tokenize
from vop.engine.assembly import load_splits
from vop.engine.checkpoint import read_checkpoint
from vop.errors import ConfigError
from vop.methods.dgl import READOUTS
from vop.models.released import ReleasedCheckpointError, load_released
from vop.retrieval.pipeline import RetrievalPipeline

LATENTS = ("transformer", "linear")


def our_dgl(**tuner):
    model = instantiate(TINY)
    cfg = OmegaConf.merge(method_config("dgl").tuner, {"frames": 4, **tuner})
    instantiate(cfg).apply(model)
    return model.eval()


@pytest.fixture(scope="module", params=LATENTS)
def released(request, tmp_path_factory):
    module = ReleasedDGL(request.param)
    return module, save_dgl_checkpoint(module, tmp_path_factory.mktemp("dgl") / "msrvtt_dgl_ckpt.best.pth.tar")


def video(frames: int = 4) -> torch.Tensor:
    return torch.randn(2, frames, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_file_has_the_released_layout(released):
    module, path = released
    saved = torch.load(path, weights_only=True)
    assert {"epoch", "global_step", "arch", "state_dict", "best_acc1", "optimizer", "scaler"} <= set(saved)
    state = saved["state_dict"]
    assert state["module.clip.visual.prompt_embeddings"].shape == (1, 4, 64)
    assert "module.clip.visual.position_ids" in state and "module.clip.logit_scale" in state
    if module.latent == "transformer":
        assert state["module.clip.unified_prompt_embedding.weight"].shape == (8 + 4 * 4, 2 * 64)
        assert "module.clip.PromptTransformer.resblocks.0.attn.in_proj_weight" in state
    else:
        assert state["module.clip.visual_prompt_embedding"].shape == (1, 4, 2 * 64)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_text_and_video_features_match_the_reference(released, dtype, atol):
    """Every caption length the 32 tokens allow, and every read-out."""
    module, path = released
    ids = every_eot_position(32)
    for readout in READOUTS:
        model = our_dgl(latent=module.latent, readout=readout)
        load_released(model, path)
        model.to(dtype)
        with torch.no_grad():
            ours_video, ours_text = model.encode_video(video().to(dtype)), model.encode_text(ids)
        torch.testing.assert_close(ours_video.double(), reference_video(module, video(), readout), atol=atol, rtol=0)
    torch.testing.assert_close(ours_text.double(), reference_text(module, ids), atol=atol, rtol=0)


def test_the_reference_is_sensitive_to_what_it_checks(released):
    """The comparison can fail: moving a global prompt or the latent space changes the features (random
    directions: a shift along (1, ..., 1) would vanish in the next LayerNorm)."""
    module, path = released
    model = our_dgl(latent=module.latent)
    load_released(model, path)
    ids = every_eot_position(32)[::5]
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        base_video, base_text = model.encode_video(video()), model.encode_text(ids)
        glob = model.hooks.global_prompts
        glob += torch.randn(glob.shape, generator=gen) * 0.5
        assert (model.encode_video(video()) - base_video).abs().max() > 1e-3
        latent = model.hooks.latent
        target = latent.embedding.weight if module.latent == "transformer" else latent.prefix.bias
        target += torch.randn(target.shape, generator=gen) * 0.5
        assert (model.encode_text(ids) - base_text).abs().max() > 1e-3


def test_text_suffix_prompts_never_reach_the_feature():
    """Released layout: the suffix follows every caption slot, so under the causal mask it is inert."""
    model = our_dgl(latent="linear")
    ids = every_eot_position(32)
    with torch.no_grad():
        before = model.encode_text(ids)
        model.hooks.latent.suffix.weight += 1.0
        assert torch.equal(model.encode_text(ids), before)
        model.hooks.latent.prefix.weight += 1.0
        assert not torch.allclose(model.encode_text(ids), before)


def test_more_frames_than_prompt_positions_name_the_setting():
    with pytest.raises(ConfigError, match="method.tuner.frames=4.*data.num_frames"):
        our_dgl().encode_video(video(5))
    our_dgl(latent="linear").encode_video(video(5))  # linear: the same frame prompts for any number of frames


def test_missing_and_unexpected_tensors_are_refused_by_name(tmp_path, released):
    module, _ = released
    key = "module.clip.visual.prompt_embeddings"

    def missing(state):
        del state[key]
    with pytest.raises(ReleasedCheckpointError, match="missing.*global_prompts"):
        load_released(our_dgl(latent=module.latent), save_dgl_checkpoint(module, tmp_path / "a.pth.tar", missing))

    def extra(state):
        state["module.clip.PromptTransformer.resblocks.1.ln_1.weight"] = torch.ones(64)
    with pytest.raises(ReleasedCheckpointError, match="PromptTransformer.resblocks.1.ln_1.weight"):
        load_released(our_dgl(latent=module.latent), save_dgl_checkpoint(module, tmp_path / "b.pth.tar", extra))

    def positions(state):
        state["module.clip.visual.position_ids"] = state["module.clip.visual.position_ids"].flip(-1)
    with pytest.raises(ReleasedCheckpointError, match="position_ids"):
        load_released(our_dgl(latent=module.latent), save_dgl_checkpoint(module, tmp_path / "c.pth.tar", positions))
    other = "linear" if module.latent == "transformer" else "transformer"
    with pytest.raises(ReleasedCheckpointError, match="method tensors.*latent"):
        load_released(our_dgl(latent=other), released[1])
    vop = instantiate(TINY)
    instantiate(method_config("vop").tuner).apply(vop)
    with pytest.raises(ReleasedCheckpointError, match="method tensors"):
        load_released(vop, released[1])


def test_a_file_that_is_not_a_torch_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "ckpt.best.pth.tar"
    path.write_bytes(b"#!/bin/sh\necho hello\n")
    with pytest.raises(ReleasedCheckpointError, match="not a PyTorch file"):
        load_released(our_dgl(), path)


@pytest.mark.parametrize("readout", ["global_prompt0", "average_global_prompt_and_frame_cls_token"])
def test_eval_of_a_released_file_gives_the_reference_metrics(tmp_path, readout):
    """`eval.py ckpt=<their .pth.tar> method=dgl` evaluates the file's model: the reference's metrics."""
    module = ReleasedDGL("transformer", seed=7)
    path = save_dgl_checkpoint(module, tmp_path / "msrvtt_dgl_transformer_ckpt.best.pth.tar")
    overrides = [f"ckpt={path}", "method.tuner.frames=4", f"method.tuner.readout={readout}"]
    cfg = tiny_synthetic("dgl", tmp_path, overrides, config_name="eval")
    metrics = evaluate_run(cfg, overrides=["method=dgl", *overrides])
    assert metrics == pytest.approx(reference_metrics(module, cfg, text_len=32), abs=1e-9)
    saved = json.loads(Path(cfg.paths.output_dir, "metrics.json").read_text())
    assert Path(saved["ckpt"]).samefile(path)


def test_training_from_the_command_line_changes_exactly_the_dgl_tensors(tmp_path):
    """train.py method=dgl on the tiny model: the checkpoint holds DGL's tensors, every one moved (a run
    with learning rate 0 from the same seed gives the starting values)."""
    runs = {}
    for lr in ("0.0", "1e-2"):
        cfg = tiny_synthetic("dgl", tmp_path / lr, ["trainer.max_steps_per_epoch=2", f"method.lr_new={lr}"])
        result = train(cfg)
        runs[lr] = read_checkpoint(cfg.paths.output_dir)[0]
    names = {f"hooks.{n}" for n, _ in our_dgl().hooks.named_parameters()}
    assert set(runs["0.0"]) == set(runs["1e-2"]) == names
    assert sum(t.numel() for t in runs["1e-2"].values()) == result["trainable_params"]
    unchanged = [n for n in names if torch.equal(runs["0.0"][n], runs["1e-2"][n])]
    assert not unchanged, unchanged


def test_retrieve_builds_a_gallery_from_a_released_file(tmp_path):
    """`retrieve.py action=build ckpt=<their .pth.tar> method=dgl`: the gallery ranks as the reference does."""
    module = ReleasedDGL("transformer", seed=7)
    path = save_dgl_checkpoint(module, tmp_path / "msrvtt_dgl_transformer_ckpt.best.pth.tar")
    gallery = tmp_path / "test.safetensors"
    overrides = ["action=build", f"gallery={gallery}", f"ckpt={path}", "method=dgl", "method.tuner.frames=4",
                 "model=clip_tiny", "data=synthetic", "split=test"]
    cfg = compose_cfg("retrieve", [*overrides, *SMALL_SYNTHETIC], tmp_path)
    retrieve(cfg, overrides)
    pipeline = RetrievalPipeline.from_gallery(gallery, topk=1)
    found = pipeline.gallery
    assert found.encoder["method"] == "dgl" and Path(found.encoder["ckpt"]).samefile(path)
    split = load_splits(cfg, "test")["test"]
    assert found.captions == split.captions
    text = reference_text(module, tokenize(instantiate(cfg.model.tokenizer), split.captions, 32))
    video = reference_video(module, evaluation_frames(cfg, split))
    torch.testing.assert_close(found.text_emb.double(), text, atol=1e-5, rtol=0)
    torch.testing.assert_close(found.video_emb.double(), video, atol=1e-5, rtol=0)
    hits = sum(pipeline(caption).ids[0] == found.video_ids[owner]
               for caption, owner in zip(found.captions, found.caption_video))
    reference = reference_metrics(module, cfg, text_len=32)["test/t2v_R@1"]
    assert hits == round(reference * len(found.captions) / 100)
