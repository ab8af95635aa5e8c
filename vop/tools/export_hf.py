"""`scripts/export_hf.py ckpt=<run> out=<folder>`: a trained run as a Hugging Face CLIP folder."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from vop.engine import assembly
from vop.engine.checkpoint import read_checkpoint, resolve_path
from vop.models.hf_export import check_exportable, check_out_folder, write_hf_folder

log = logging.getLogger(__name__)


def export_run(ckpt: str | Path, out: str | Path) -> Path:
    """Rebuild the run's model as it was trained (its stored config, read as values), refuse a method
    that adds modules before any tensor is read, then write CLIP with the trained tensors in it."""
    check_out_folder(Path(out).expanduser())
    _, saved = read_checkpoint(ckpt, tensors=False)  # the header and stored config, checked first
    parts = assembly.build_model_parts(saved, ckpt, before_weights=lambda m: check_exportable(m, saved.method.name))
    model, tokenizer, data, text_len = parts.model, parts.tokenizer, saved.data, parts.text_len
    parts.method.merge(model)  # LoRA: the low-rank updates folded into CLIP's weights, plain Linears back
    info = {"ckpt": str(resolve_path(ckpt).resolve()), "model": saved.model.name, "method": saved.method.name,
            "data": data.name, "max_text_len": text_len,
            # How vop embeds a video with these weights: the mean of the frames' L2-normalised
            # get_image_features, normalised again.
            "video": {"num_frames": data.num_frames, "sampling": data.test_sampling,
                      "readout": "mean of L2-normalised frame embeddings, L2-normalised"}}
    return write_hf_folder(model, tokenizer, out, text_len, info)


def main(cfg: DictConfig) -> None:
    out = export_run(cfg.ckpt, cfg.out)
    print(f"wrote {out}: transformers.CLIPModel.from_pretrained({str(out)!r}) and CLIPProcessor load it")
