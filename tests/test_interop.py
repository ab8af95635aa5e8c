"""Checkpoint interop: OpenAI-format CLIP <-> HF, checked against open_clip's own model code, and
the VoP authors' released checkpoint layout through eval.py."""
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, method_config, tiny_synthetic
from vop.engine.evaluate import evaluate_run
from vop.models.convert import ConversionError, hf_to_openai, openai_to_hf
from vop.models.released import TEXT_PROMPTS, VIDEO_PROMPTS, ReleasedCheckpointError, load_released

TINY = OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net


def tiny_model(method: str | None = None):
    model = instantiate(TINY)
    if method:
        instantiate(method_config(method).tuner).apply(model)
    return model.eval()


def open_clip_model_module():
    """open_clip's `model.py` without `import open_clip` (whose __init__ needs torchvision, which does
    not import here). torchvision is only used by its ResNet towers: a stub stands in for it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch is not installed")
    package = types.ModuleType("open_clip")
    package.__path__ = list(spec.submodule_search_locations)
    misc = types.ModuleType("torchvision.ops.misc")
    misc.FrozenBatchNorm2d = torch.nn.BatchNorm2d
    stubs = {"open_clip": package, "torchvision": types.ModuleType("torchvision"),
             "torchvision.ops": types.ModuleType("torchvision.ops"), "torchvision.ops.misc": misc}
    with mock.patch.dict(sys.modules, stubs):
        return importlib.import_module("open_clip.model")


@pytest.fixture(scope="module")
def open_clip_tiny():
    """open_clip's OpenAI-architecture CLIP (QuickGELU) with the tiny model's shapes, random weights."""
    oc = open_clip_model_module()
    v, t = TINY.vision, TINY.text
    vision = oc.CLIPVisionCfg(layers=v.num_hidden_layers, width=v.hidden_size,
                              head_width=v.hidden_size // v.num_attention_heads, patch_size=v.patch_size,
                              image_size=v.image_size, mlp_ratio=v.intermediate_size / v.hidden_size)
    text = oc.CLIPTextCfg(context_length=t.max_position_embeddings, vocab_size=t.vocab_size, width=t.hidden_size,
                          heads=t.num_attention_heads, layers=t.num_hidden_layers,
                          mlp_ratio=t.intermediate_size / t.hidden_size)
    torch.manual_seed(1)
    model = oc.CLIP(TINY.projection_dim, vision, text, quick_gelu=True).eval()
    with torch.no_grad():  # open_clip zero-inits nothing we need, but make every tensor non-trivial
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def test_openai_to_hf_matches_open_clip_features(open_clip_tiny):
    ours = tiny_model()
    ours.clip.load_state_dict(openai_to_hf(open_clip_tiny.state_dict()), strict=True)
    pixels = torch.randn(3, 3, 224, 224)
    ids = torch.zeros(3, 77, dtype=torch.long)
    for row, length in enumerate([4, 20, 76]):
        ids[row, 0], ids[row, 1:length] = 49406, torch.randint(300, 40000, (length - 1,))
        ids[row, length] = 49407
    with torch.no_grad():
        ref_image = F.normalize(open_clip_tiny.encode_image(pixels), dim=-1)
        ref_text = F.normalize(open_clip_tiny.encode_text(ids), dim=-1)
        torch.testing.assert_close(ours.encode_frames(pixels, num_frames=3), ref_image, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.encode_text(ids), ref_text, atol=1e-4, rtol=0)
    assert ours.logit_scale.item() == pytest.approx(open_clip_tiny.logit_scale.item())


def test_hf_openai_round_trip_is_exact():
    state = tiny_model().clip.state_dict()
    openai = hf_to_openai(state)
    assert openai["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * 64, 64)
    assert openai["visual.proj"].shape == (64, 64) and "text_projection" in openai
    back = openai_to_hf(openai)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_unknown_openai_tensor_is_named():
    state = hf_to_openai(tiny_model().clip.state_dict())
    state["visual.extra_head.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match="visual.extra_head.weight"):
        openai_to_hf(state)


def released_vop_state(model) -> dict[str, torch.Tensor]:
    """A file laid out like VoP_msrvtt9k.pth: `module.` + OpenAI CLIP + the two prompt tensors."""
    hooks = model.hooks
    state = hf_to_openai(model.clip.state_dict())
    state[VIDEO_PROMPTS] = torch.stack([p.detach() for p in hooks.video_prompts]).unsqueeze(1)  # [L, 1, n, W]
    state[TEXT_PROMPTS] = hooks.text_prompts.detach().clone()  # [L, 8, W_t]
    return {f"module.{k}": v for k, v in state.items()}


def test_released_vop_checkpoint_round_trips(tmp_path):
    source = tiny_model("vop")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))  # weights and prompts differ from a fresh model's
    state = released_vop_state(source)
    assert state[f"module.{VIDEO_PROMPTS}"].shape == (2, 1, 8, 64)
    assert state[f"module.{TEXT_PROMPTS}"].shape == (2, 8, 64)
    path = tmp_path / "VoP_tiny.pth"
    torch.save(state, path)
    target = tiny_model("vop")
    load_released(target, path)
    for (name, a), (_, b) in zip(source.named_parameters(), target.named_parameters()):
        assert torch.equal(a, b), name


def test_released_checkpoint_errors_name_the_problem(tmp_path):
    path = tmp_path / "VoP_tiny.pth"
    torch.save(released_vop_state(tiny_model("vop")), path)
    with pytest.raises(ReleasedCheckpointError, match="method tensors"):
        load_released(tiny_model("bias"), path)  # prompts, but the method has none
    state = released_vop_state(tiny_model("vop"))
    del state["module.ln_final.weight"]
    torch.save(state, path)
    with pytest.raises(ReleasedCheckpointError, match="final_layer_norm.weight"):
        load_released(tiny_model("vop"), path)


def test_full_clip_state_dict_loads_into_baselines(tmp_path):
    source = tiny_model()
    with torch.no_grad():
        source.clip.text_projection.weight.mul_(2)
    path = tmp_path / "clip_full.pth"
    torch.save({f"module.{k}": v for k, v in hf_to_openai(source.clip.state_dict()).items()}, path)
    for method in ("bias", "partial", "proj"):
        target = tiny_model(method)
        load_released(target, path)
        assert torch.equal(target.clip.text_projection.weight, source.clip.text_projection.weight)


def test_eval_loads_a_released_vop_file(tmp_path, readout="released"):
    # The published numbers need the released read-out; the default (eot) path runs in every training test.
    path = tmp_path / "VoP_tiny.pth"
    torch.save(released_vop_state(tiny_model("vop")), path)
    overrides = [f"ckpt={path}", f"method.tuner.readout={readout}"]
    cfg = tiny_synthetic("vop", tmp_path, overrides, config_name="eval")
    metrics = evaluate_run(cfg, overrides=["method=vop", *overrides])
    assert 0 <= metrics["test/t2v_R@1"] <= 100 and metrics["test/t2v_MnR"] >= 1
    assert Path(cfg.paths.output_dir, "metrics.json").is_file()


@pytest.mark.slow  # two interpreter start-ups with transformers: ~1 minute on 2 shared cores
def test_convert_script_writes_a_loadable_hf_folder(tmp_path):
    """An OpenAI-format file -> HF folder that `from_pretrained` and the tokenizer loader accept."""
    import subprocess
    import sys as _sys

    from vop.data.tokenizer import load_tokenizer
    from vop.models.clip import CLIPVideoModel

    source = tiny_model()
    torch.save(hf_to_openai(source.clip.state_dict()), tmp_path / "tiny.pt")
    arch = "+model.arch.vision={%s}" % ",".join(f"{k}:{v}" for k, v in TINY.vision.items())
    text = "+model.arch.text={%s}" % ",".join(f"{k}:{v}" for k, v in TINY.text.items())
    proc = subprocess.run([_sys.executable, "scripts/convert_openai.py", "model=clip_tiny", f"src={tmp_path / 'tiny.pt'}",
                           f"dst={tmp_path / 'hf'}", arch, text, f"+model.arch.projection_dim={TINY.projection_dim}"],
                          cwd=Path(CONFIG_DIR).parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = CLIPVideoModel.from_pretrained(str(tmp_path / "hf"))
    assert all(torch.equal(a, b) for a, b in zip(source.clip.state_dict().values(), loaded.clip.state_dict().values()))
    assert len(load_tokenizer(str(tmp_path / "hf"))) == 49408
