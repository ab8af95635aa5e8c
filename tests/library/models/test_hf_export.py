"""scripts/export_hf.py: a trained run as a Hugging Face CLIP folder that plain transformers code loads
and that gives vop's embeddings (checked against vop's own encoder, to 1e-5)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from transformers import CLIPModel, CLIPProcessor

from tests.helpers import assert_one_block, cli, in_process, tiny_synthetic
from tests.mounts import tmpfs
from vop.commands.train import train
from vop.engine.assembly import load_splits
from vop.errors import ConfigError
from vop.file_writes import umask
from vop.models.hf_export import INFO_FILE, ExportWriteError, NotExportableError
from vop.retrieval.query_encoder import Encoder
from vop.tools import export_hf
from vop.tools.export_hf import export_run

# A few real steps at a rate that moves every trained tensor, so a folder without them would differ.
RUN = ["method.lr=1e-2", "method.lr_new=1e-2", "scheduler.warmup_ratio=0", "trainer.max_steps_per_epoch=3",
       "trainer.eval_every_epoch=false"]
CAPTIONS = ["a red circle moves left", "a blue square moves up quickly over a green background", "x" * 300]


def plain(output) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features, 4.x a tensor."""
    return output if torch.is_tensor(output) else output.pooler_output


@pytest.fixture(scope="module", params=["full", "bias", "proj", "partial", "lora"])
def run(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    cfg = tiny_synthetic(request.param, tmp, RUN)
    train(cfg)
    return cfg, tmp


def test_plain_transformers_give_vops_text_frame_and_video_embeddings(run):
    cfg, tmp = run
    out = export_run(cfg.paths.output_dir, tmp / "export")
    encoder = Encoder.from_run(cfg.paths.output_dir)
    model = CLIPModel.from_pretrained(out).eval()
    processor = CLIPProcessor.from_pretrained(out)

    with torch.no_grad():
        inputs = processor.tokenizer(CAPTIONS, padding=True, truncation=True, return_tensors="pt")
        text = F.normalize(plain(model.get_text_features(**inputs)), dim=-1)
        torch.testing.assert_close(text, encoder.encode_texts(CAPTIONS), rtol=0, atol=1e-5)

        split = load_splits(cfg, "test")["test"]
        batch = next(iter(encoder.video_loader(split, range(4), num_workers=0)))
        pixels = encoder.transform(batch["video"], torch.float32)  # [B, T, 3, S, S], vop's frames
        b, t = pixels.shape[:2]
        frames = F.normalize(plain(model.get_image_features(pixel_values=pixels.flatten(0, 1))), dim=-1)
        torch.testing.assert_close(frames, encoder.model.encode_frames(pixels.flatten(0, 1), t), rtol=0, atol=1e-5)
        video = F.normalize(frames.view(b, t, -1).mean(1), dim=-1)  # the readout vop_export.json names
        torch.testing.assert_close(video, encoder.encode_videos(split, range(4)), rtol=0, atol=1e-5)

        # The trained tensors are in the folder: the untrained model embeds differently.
        untrained = CLIPModel.from_pretrained(out)
        # (the same random CLIP for every method; `full` adds no LoRA layers to its module names)
        untrained.load_state_dict(Encoder(tiny_synthetic("full", tmp / "base")).model.clip.state_dict())
        assert not torch.allclose(plain(untrained.get_text_features(**inputs)), plain(model.get_text_features(**inputs)))

    # A LoRA run exports a plain CLIPModel: its updates are merged, no peft module or key is left.
    assert not [k for k in model.state_dict() if "lora_" in k or "base_layer" in k]

    info = json.loads((out / INFO_FILE).read_text())
    assert info["method"] == cfg.method.name and info["video"]["num_frames"] == t
    assert processor.tokenizer.model_max_length == cfg.data.max_text_len


def test_the_image_processor_prepares_frames_as_vops_transform_does(run, tmp_path):
    cfg, tmp = run
    if cfg.method.name != "full":
        pytest.skip("the image processor does not depend on the method: checked on the full run")
    out = export_run(cfg.paths.output_dir, tmp_path / "export")
    processor = CLIPProcessor.from_pretrained(out)
    encoder = Encoder.from_run(cfg.paths.output_dir)
    rng = np.random.default_rng(0)
    # A smooth frame (resampling filters agree on it to far below a grey level) of another size.
    y, x = np.mgrid[0:90, 0:160]
    frame = np.stack([x * 1.5, y * 2.5, (x + y) * 1.0], -1).clip(0, 255).astype(np.uint8)
    frame = np.clip(frame + rng.integers(0, 2, frame.shape), 0, 255).astype(np.uint8)
    theirs = processor.image_processor(images=[frame], return_tensors="pt")["pixel_values"]
    ours = encoder.transform(torch.from_numpy(frame)[None, None], torch.float32)[0]
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().mean() < 0.02  # bicubic in PIL vs torch: the same crop and scale


@pytest.mark.parametrize("method", ["vop"])  # adapters take the same path: model.hooks is not plain CLIP's
def test_a_method_that_adds_modules_is_refused_saying_why(method, tmp_path):
    cfg = tiny_synthetic(method, tmp_path, RUN)
    train(cfg)
    with pytest.raises(NotExportableError, match=f"method={method} cannot be exported.*adds modules"):
        export_run(cfg.paths.output_dir, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    assert not list(tmp_path.glob(".export*"))


def test_the_script_exports_and_refuses_a_used_folder(run, tmp_path):
    cfg, _ = run
    if cfg.method.name != "bias":
        pytest.skip("the script's paths do not depend on the method: run on the bias run")
    proc = cli("scripts/export_hf.py", f"ckpt={cfg.paths.output_dir}", f"out={tmp_path / 'clip'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CLIPModel.from_pretrained" in proc.stdout
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "preprocessor_config.json",
            INFO_FILE} <= {p.name for p in (tmp_path / "clip").iterdir()}

    def export(ckpt, out):  # the refusals are the export's own messages: what the script's main calls, here
        return in_process(lambda: export_hf.main(OmegaConf.create({"ckpt": str(ckpt), "out": str(out)})))

    assert_one_block(export(cfg.paths.output_dir, tmp_path / "clip"),
                     f"out={tmp_path / 'clip'} exists and is not an empty folder")
    missing = export(tmp_path / "nothing", tmp_path / "other")
    assert_one_block(missing, str(tmp_path / "nothing"))
    assert not (tmp_path / "other").exists()


def bias_run(run):
    cfg, _ = run
    if cfg.method.name != "bias":
        pytest.skip("where the export goes does not depend on the method: run on the bias run")
    return cfg


def test_an_export_into_a_read_only_place_is_refused_before_the_model_loads(run, tmp_path):
    cfg = bias_run(run)
    with tmpfs(tmp_path / "ro", 64, read_only=True) as folder:
        for out in (folder, folder / "clip"):
            with pytest.raises(ConfigError, match=rf"out={out}: cannot write into {folder} \(Read-only file system\)"):
                export_run(cfg.paths.output_dir, out)


def test_an_export_into_an_empty_mount_point_writes_into_it(run, tmp_path):
    """A mounted volume cannot be replaced by a rename: the files are written into it."""
    cfg = bias_run(run)
    with tmpfs(tmp_path / "volume", 64 * 1024) as folder:
        export_run(cfg.paths.output_dir, folder)
        assert {"config.json", "model.safetensors", INFO_FILE} <= {p.name for p in folder.iterdir()}
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
        assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {oct(0o666 & ~umask())}  # 0644, as open()
        CLIPModel.from_pretrained(folder)


def test_a_full_disk_during_an_export_leaves_the_folder_as_it_was(run, tmp_path):
    cfg = bias_run(run)
    with tmpfs(tmp_path / "volume", 4 * 1024) as folder:  # the tiny CLIP's weights are 14 MB
        with pytest.raises(ExportWriteError, match=rf"out={folder}: could not write the export: the disk is full "
                                                   r"\(ENOSPC\); nothing of it was left there"):
            export_run(cfg.paths.output_dir, folder)
        assert not list(folder.iterdir())
        with pytest.raises(ExportWriteError):
            export_run(cfg.paths.output_dir, folder / "new")
        assert not list(folder.iterdir())
