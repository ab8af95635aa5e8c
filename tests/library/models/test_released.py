"""The VoP authors' released files, as ModelScope lays them out, load as shipped and compute the
released model: checked against an independent plain-torch forward (tests/released_fakes.py)."""
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import method_config, tiny_synthetic
from tests.released_fakes import (TINY, ModelScopeSeries, ModelScopeVoP, every_eot_position, openai_clip,
                                  plain_test_metrics, plain_text_features, plain_video_features, save_released)
from vop.commands.eval import evaluate_run
from vop.models.convert import hf_to_openai, openai_to_hf
from vop.models.released import ReleasedCheckpointError, load_released

HEADS = TINY.text.num_attention_heads


def our_model(method: str | None, layers: int | None = None, **tuner):
    net = OmegaConf.merge(TINY, {"vision": {"num_hidden_layers": layers}, "text": {"num_hidden_layers": layers}}) \
        if layers else TINY
    model = instantiate(net)
    if method:
        cfg = method_config(method).tuner
        instantiate(OmegaConf.merge(cfg, tuner)).apply(model)
    return model.eval()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    folder = tmp_path_factory.mktemp("released")
    module = ModelScopeVoP(openai_clip())
    return module, save_released(module, folder / "VoP_msrvtt9k.pth")


def test_released_file_has_modelscope_layout(released):
    """The fake's keys are those of the released file (README "Released checkpoints")."""
    state = torch.load(released[1], weights_only=True)["state_dict"]
    assert "module.clip.visual.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "module.image_encoder.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "module.text_encoder.text_projection" in state and "module.clip.logit_scale" in state
    assert state["module.visual_prompt_learner.visual_prompts"].shape == (2, 1, 8, 64)
    assert state["module.text_prompt_learner.text_prompts"].shape == (2, 8, 64)
    assert not any("attn_mask" in k for k in state)


def released_vop(released, readout: str):
    """(the released module, our VoP with the released file loaded, captions of every EOT index)."""
    module, path = released
    model = our_model("vop", readout=readout)
    load_released(model, path)
    return module, model, every_eot_position(69)


@pytest.mark.parametrize("readout", ["released", "eot"])
def test_text_path_matches_the_released_forward_for_every_eot_index(released, readout):
    module, model, ids = released_vop(released, readout)
    with torch.no_grad():
        ours = model.encode_text(ids)
    reference = plain_text_features(module, ids, HEADS, readout)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("readout,first", [("released", 64), ("eot", 68)])
def test_suffix_prompts_reach_only_long_captions(released, readout, first):
    """Under the causal mask the suffix changes the feature only when the read position follows it:
    EOT index >= 64 (released read-out) or a caption filling all 69 slots (eot)."""
    module, model, ids = released_vop(released, readout)
    with torch.no_grad():
        before = model.encode_text(ids)
        model.hooks.text_prompts[:, 4:] += torch.randn_like(model.hooks.text_prompts[:, 4:])
        after = model.encode_text(ids)
    changed = [int(e) for e in ids.argmax(dim=1)[(before - after).abs().amax(dim=1) > 1e-6]]
    assert changed == list(range(first, 69))


def test_video_path_matches_the_released_forward(released):
    module, path = released
    model = our_model("vop")
    load_released(model, path)
    video = torch.randn(2, 3, 3, 224, 224)
    with torch.no_grad():
        ours = model.encode_video(video)
    torch.testing.assert_close(ours, plain_video_features(module, video, HEADS), atol=1e-5, rtol=0)


@pytest.mark.parametrize("video_layers,text_layers", [([0, 1], [0]), ([1], [0, 2]), ([0, 2], [0, 1])])
def test_prompt_depth_matches_the_released_forward(tmp_path, video_layers, text_layers):
    """Prompts in some layers only (the released code's vpt_layers / tpt_layers)."""
    module = ModelScopeVoP(openai_clip(layers=3))
    module.vpt_layers, module.tpt_layers = video_layers, text_layers
    with torch.no_grad():
        module.visual_prompt_learner.visual_prompts.data = module.visual_prompt_learner.visual_prompts[:len(video_layers)]
        module.text_prompt_learner.text_prompts.data = module.text_prompt_learner.text_prompts[:len(text_layers)]
    path = save_released(module, tmp_path / "VoP.pth")
    model = our_model("vop", layers=3, readout="released", video_layers=video_layers, text_layers=text_layers)
    load_released(model, path)
    ids, video = every_eot_position(69)[::7], torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(ids), plain_text_features(module, ids, HEADS, "released"),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(model.encode_video(video), plain_video_features(module, video, HEADS),
                                   atol=1e-5, rtol=0)


def test_series_file_loads_into_bias_proj_partial(tmp_path):
    clip = openai_clip(seed=3)
    path = save_released(ModelScopeSeries(clip), tmp_path / "VoPSE_msrvtt9k.pth")
    expected = openai_to_hf(clip.state_dict())
    for method in ("bias", "proj", "partial"):
        model = our_model(method)
        load_released(model, path)
        state = model.clip.state_dict()
        assert all(torch.equal(state[k], v) for k, v in expected.items()), method


def test_plain_openai_state_dicts_still_load(tmp_path, released):
    clip = openai_clip(seed=4)
    for name, state in (("plain.pth", clip.state_dict()),
                        ("prefixed.pth", {f"module.{k}": v for k, v in clip.state_dict().items()})):
        torch.save(state, tmp_path / name)
        model = our_model("proj")
        load_released(model, tmp_path / name)
        assert torch.equal(hf_to_openai(model.clip.state_dict())["text_projection"], clip.text_projection)


def edited(tmp_path, module, edit) -> Path:
    return save_released(module, tmp_path / "bad.pth", edit)


def test_a_duplicate_that_differs_is_refused_by_name(tmp_path, released):
    key = "module.text_encoder.ln_final.weight"

    def edit(state):
        state[key] = state[key] + 1
    with pytest.raises(ReleasedCheckpointError, match="text_encoder.ln_final.weight.*differs.*clip.ln_final.weight"):
        load_released(our_model("vop"), edited(tmp_path, released[0], edit))


def test_unknown_and_missing_tensors_are_refused_by_name(tmp_path, released):
    def extra(state):
        state["module.pool_frames.weight"] = torch.zeros(1)
    with pytest.raises(ReleasedCheckpointError, match="pool_frames.weight"):
        load_released(our_model("vop"), edited(tmp_path, released[0], extra))

    def unknown_clip(state):
        state["module.clip.visual.extra_head.weight"] = torch.zeros(1)
    with pytest.raises(ReleasedCheckpointError, match="visual.extra_head.weight"):
        load_released(our_model("vop"), edited(tmp_path, released[0], unknown_clip))

    def missing(state):
        del state["module.clip.ln_final.weight"]
    with pytest.raises(ReleasedCheckpointError, match="clip.ln_final.weight"):  # its duplicate has no original
        load_released(our_model("vop"), edited(tmp_path, released[0], missing))
    with pytest.raises(ReleasedCheckpointError, match="method tensors"):
        load_released(our_model("bias"), released[1])  # prompts, but the method has none


class Arbitrary:
    """Any class: unpickling it would run code a file chooses."""


def test_a_file_needing_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "opt": Arbitrary()}, path)
    with pytest.raises(ReleasedCheckpointError, match="evil.pth cannot be read as a state dict of tensors.*never unpickles"):
        load_released(our_model("vop"), path)


@pytest.mark.parametrize("readout", ["released", "eot"])
def test_eval_of_a_released_vop_file_gives_the_released_models_metrics(tmp_path, released, readout):
    """`eval.py ckpt=VoP_msrvtt9k.pth method=vop` computes the file's model: its metrics are those of the
    plain forward of the module the file was saved from, on the same frames and captions."""
    overrides = [f"ckpt={released[1]}", f"method.tuner.readout={readout}"]
    cfg = tiny_synthetic("vop", tmp_path, overrides, config_name="eval")
    metrics = evaluate_run(cfg, overrides=["method=vop", *overrides])
    assert metrics == pytest.approx(plain_test_metrics(released[0], cfg, readout), abs=1e-9)
    saved = json.loads(Path(cfg.paths.output_dir, "metrics.json").read_text())
    assert {k: saved[k] for k in metrics} == pytest.approx(metrics) and Path(saved["ckpt"]).samefile(released[1])
