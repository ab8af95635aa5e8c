"""VoP and its variants on the tiny model: token counts per layer, the text read-out, VoP^P/C/F."""
import tempfile
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, method_config, tiny_synthetic
from vop.engine.assembly import build_model
from vop.methods.vop import resolve_inter_from

SOT, EOT = 49406, 49407
NUM_PATCHES = (224 // 32) ** 2 + 1  # tiny model: 7x7 patches + CLS
N_VIDEO, N_TEXT = 8, 8


def vop_model(name: str = "vop", **tuner):
    cfg = method_config(name)
    cfg.tuner.update(tuner)
    model = instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net)
    instantiate(cfg.tuner).apply(model)
    return model.eval()


def captions(lengths: list[int], total: int = 20) -> torch.Tensor:
    """Token ids [B, total]: SOT, random words, EOT at index `length`, zero padding."""
    torch.manual_seed(0)
    ids = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, 0], ids[row, 1:length] = SOT, torch.randint(300, 40000, (length - 1,))
        ids[row, length] = EOT
    return ids


def record_tokens(model) -> dict[str, list]:
    """Token counts entering every block (forward pre-hooks) and leaving every hooked layer."""
    seen = {"vision_in": [], "text_in": [], "vision_out": [], "text_out": []}
    for tower, layers in (("vision", model.clip.vision_model.encoder.layers),
                          ("text", model.clip.text_model.encoder.layers)):
        for layer in layers:
            layer.register_forward_pre_hook(lambda m, args, t=tower: seen[f"{t}_in"].append(args[0].shape[1]))
    hooks = model.hooks
    vision_layer, text_layer = hooks.vision_layer, hooks.text_layer
    hooks.vision_layer = lambda *a: _out(seen["vision_out"], vision_layer(*a))
    hooks.text_layer = lambda *a: _out(seen["text_out"], text_layer(*a))
    return seen


def _out(store: list, x: torch.Tensor) -> torch.Tensor:
    store.append(x.shape[1])
    return x


@pytest.mark.parametrize("name", ["vop", "vop_p", "vop_c", "vop_f", "vop_fp", "vop_fc"])
def test_prompts_inserted_and_removed_per_layer(name):
    model = vop_model(name)
    seen = record_tokens(model)
    frames, ids = 3, captions([5, 12])
    with torch.no_grad():
        assert model.encode_video(torch.randn(2, frames, 3, 224, 224)).shape == (2, 64)
        assert model.encode_text(ids).shape == (2, 64)
    inter = model.hooks.inter
    assert seen["vision_in"] == [NUM_PATCHES + N_VIDEO + (frames if i in inter else 0) for i in range(2)]
    assert seen["vision_out"] == [NUM_PATCHES] * 2
    assert seen["text_in"] == [ids.shape[1] + N_TEXT] * 2
    assert seen["text_out"] == [ids.shape[1]] * 2


def capture_pool(model) -> dict:
    """Spy on the text read-out: the sequence length it sees and which position each row was read at."""
    got = {}
    pool = model.hooks.pool_text

    def spy(x, eot):
        out = pool(x, eot)
        got["length"] = x.shape[1]
        got["read"] = [next(j for j in range(x.shape[1]) if torch.equal(x[b, j], out[b])) for b in range(len(x))]
        return out

    model.hooks.pool_text = spy
    return got


def test_text_readout_is_the_end_of_text_token_by_default():
    model = vop_model("vop")
    got = capture_pool(model)
    ids = captions([3, 9, 15])
    with torch.no_grad():
        feature = model.encode_text(ids)
        padded = ids.clone()
        padded[:, -1] = 555  # a token after every EOT: the causal read-out at EOT must not see it
        torch.testing.assert_close(model.encode_text(padded), feature)
    assert got["length"] == ids.shape[1]  # prompts dropped: positions are the caption's own
    assert got["read"] == [3, 9, 15] and all(ids[b, i] == EOT for b, i in enumerate(got["read"]))


def test_released_readout_reads_eot_plus_eight_of_the_prompted_sequence():
    model = vop_model("vop", readout="released")
    got = capture_pool(model)
    ids = captions([3, 19])
    with torch.no_grad():
        model.encode_text(ids)
    assert got["length"] == ids.shape[1] + N_TEXT  # the last layer keeps its prompts
    assert got["read"] == [3 + N_TEXT, 19 + N_TEXT]


def test_too_long_captions_name_the_setting():
    model = vop_model("vop")
    with pytest.raises(ValueError, match="max_text_len <= 69"):
        model.encode_text(captions([5], total=77))


def test_vop_p_gives_each_frame_position_its_own_prompts():
    frames = torch.randn(1, 1, 3, 224, 224).expand(1, 3, -1, -1, -1)  # the same image at 3 positions
    for name, distinct in (("vop", False), ("vop_p", True)):
        model = vop_model(name)
        with torch.no_grad():
            per_frame = model.encode_frames(frames.flatten(0, 1), num_frames=3)  # [3, D]
        assert (not torch.allclose(per_frame[0], per_frame[1])) == distinct, name
    prompts = model.hooks.frame_prompts(1, torch.zeros(3, NUM_PATCHES, 64), num_frames=3)  # [T, n, W]
    assert not torch.equal(prompts[0], prompts[1])
    with pytest.raises(ValueError, match="method.tuner.frames"):
        model.hooks.frame_prompts(1, torch.zeros(13, NUM_PATCHES, 64), num_frames=13)


def layer_outputs(model, frames: torch.Tensor) -> list[torch.Tensor]:
    outs = []
    handles = [layer.register_forward_hook(lambda m, a, out: outs.append(out[:, 0].detach().clone()))
               for layer in model.clip.vision_model.encoder.layers]
    with torch.no_grad():
        final = model.encode_frames(frames.flatten(0, 1), num_frames=frames.shape[1])
    for h in handles:
        h.remove()
    return outs + [final]


@pytest.mark.parametrize("name", ["vop_f", "vop_fp", "vop_fc"])
def test_vop_f_frames_interact_only_in_inter_frame_layers(name):
    model = vop_model(name)
    (k_s,) = {min(model.hooks.inter)}
    torch.manual_seed(0)
    video = torch.randn(1, 3, 3, 224, 224)
    changed = video.clone()
    changed[:, 0] += 1.0  # change frame 0 only
    before, after = layer_outputs(model, video), layer_outputs(model, changed)
    for i, (a, b) in enumerate(zip(before, after)):
        others_same = torch.equal(a[1:], b[1:])  # CLS of frames 1 and 2
        assert others_same == (i < k_s), f"layer {i}: K_s={k_s}"
        assert not torch.equal(a[0], b[0])


def test_vop_c_prompts_carry_the_other_frames_context():
    model = vop_model("vop_c")
    x = torch.randn(3, NUM_PATCHES, 64)
    changed = x.clone()
    changed[0, 0] += 1.0  # frame 0's CLS
    with torch.no_grad():
        a, b = model.hooks.frame_prompts(1, x, 3), model.hooks.frame_prompts(1, changed, 3)
        assert not torch.equal(a[1], b[1])
        # Layer 0 is not a context layer: its CLS input is still the class embedding.
        assert 0 not in model.hooks.context


@pytest.mark.parametrize("inter_from,depth,expected", [(0.5, 12, 6), (0.5, 2, 1), (0.1, 2, 1), (0.99, 2, 1),
                                                       (3, 12, 3), (None, 12, None)])
def test_first_inter_frame_layer(inter_from, depth, expected):
    assert resolve_inter_from(inter_from, depth) == expected


@pytest.mark.parametrize("inter_from", [0, 2, 1.0, -1, True])
def test_inter_from_out_of_range_names_the_key(inter_from):
    with pytest.raises(ValueError, match="method.tuner.inter_from"):
        resolve_inter_from(inter_from, 2)


def test_prompts_skip_weight_decay_unless_asked():
    from vop.engine.optim import param_groups

    for decay, expected in ((False, 0.0), (True, 0.2)):
        model = vop_model("vop", prompt_decay=decay)
        method = instantiate(OmegaConf.merge(OmegaConf.load(f"{CONFIG_DIR}/method/vop.yaml").tuner,
                                             {"prompt_decay": decay}))
        groups = param_groups(model, method, 1e-6, 1e-5, 0.2)
        assert [g["weight_decay"] for g in groups] == [expected]


def test_vop_p_has_twelve_positions_whatever_the_dataset():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = tiny_synthetic("vop_p", Path(tmp), ["data.num_frames=4"])
        model = build_model(cfg)[0]
    assert {tuple(p.shape[:1]) for p in model.hooks.video_prompts.values()} == {(12,)}
    with pytest.raises(ValueError, match=r"method.tuner.frames=12.*13 frames \(data.num_frames\)"):
        model.hooks.frame_prompts(1, torch.zeros(13, NUM_PATCHES, 64), num_frames=13)


def test_prompt_depth_layers():
    model = vop_model("vop", video_layers=[1], text_layers=[0])
    assert list(model.hooks.video_prompts.keys()) == ["1"] and model.hooks.text_prompts.shape == (1, 8, 64)
    seen = record_tokens(model)
    with torch.no_grad():
        model.encode_video(torch.randn(1, 2, 3, 224, 224))
        model.encode_text(captions([5]))
    assert seen["vision_in"] == [NUM_PATCHES, NUM_PATCHES + N_VIDEO]
    assert seen["text_in"] == [20 + N_TEXT] * 2  # layer-0 prompts stay until a listed layer replaces them
    for bad, key in (({"text_layers": [1]}, "text_layers"), ({"video_layers": [2]}, "video_layers"),
                     ({"video_layers": [1, 0]}, "video_layers")):
        with pytest.raises(ValueError, match=f"method.tuner.{key}"):
            vop_model("vop", **bad)
