"""Checkpoint interop: OpenAI-format CLIP <-> HF, checked against open_clip's own model code
(the authors' released files: tests/library/models/test_released.py)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, method_config
from tests.released_fakes import openai_clip
from vop.models.convert import ConversionError, hf_to_openai, openai_to_hf, read_openai_file
from vop.models.torchscript import UnsafeArchiveError

TINY = OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net


def tiny_model(method: str | None = None):
    model = instantiate(TINY)
    if method:
        instantiate(method_config(method).tuner).apply(model)
    return model.eval()


@pytest.fixture(scope="module")
def open_clip_tiny():
    """open_clip's OpenAI-architecture CLIP (QuickGELU) with the tiny model's shapes, random weights."""
    return openai_clip()


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


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_torchscript_archive_is_read_without_running_its_code(open_clip_tiny, tmp_path):
    """OpenAI ships ViT-B-32.pt as a TorchScript archive: its tensors are read with an allow-listed
    unpickler (no torch.jit.load), and an archive whose pickle names anything else is refused."""
    import pickle
    import zipfile

    ids = torch.zeros(1, 77, dtype=torch.long)
    ids[0, 0], ids[0, 3] = 49406, 49407
    traced = torch.jit.trace(open_clip_tiny, (torch.randn(1, 3, 224, 224), ids), check_trace=False)
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(traced, path)
    tensors = read_openai_file(str(path))
    expected = traced.state_dict()
    assert tensors.keys() == expected.keys() and all(torch.equal(tensors[k], expected[k]) for k in expected)
    assert openai_to_hf(tensors).keys() == tiny_model().clip.state_dict().keys()
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            data = pickle.dumps({"x": print}, protocol=2) if name.endswith("/data.pkl") else src.read(name)
            dst.writestr(name, data)
    with pytest.raises(UnsafeArchiveError, match=r"bad.pt: refused.*__builtin__.print"):
        read_openai_file(str(bad))


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
