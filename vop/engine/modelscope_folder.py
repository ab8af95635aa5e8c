"""The VoP authors' ModelScope model folders (damo/cv_vit-b32_retrieval_vop, ..._vop_bias, _proj,
_partial) as this project's model, method and gallery.

A folder as ModelScope downloads it holds `configuration.json` (its `hyperparam` block sets the
method's settings), `VoP_msrvtt9k.pth` (VoP) or `VoPSE_msrvtt9k.pth` (the bias / proj / partial
series: a complete tuned CLIP), `bpe_simple_vocab_16e6.txt.gz` (OpenAI's BPE vocabulary, used as the
tokenizer), `ViT-B-32.pt` (OpenAI's TorchScript archive: not read here, since the checkpoint holds
every CLIP tensor and the architecture is `model=`'s) and the precomputed MSR-VTT gallery
`*_features.pkl` (`text_embeds`, `vid_embeds`, `vid_ids`, `texts`).
Every file is read with `weights_only=True`: tensors, lists, dicts and strings only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from vop.config.files import load_with_defaults

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# ModelScope's weights file -> this project's method config (configs/method/<name>.yaml) and settings.
WEIGHTS = {"VoP_msrvtt9k.pth": ("vop", {"readout": "released"}),
           # A complete CLIP: computed as plain CLIP, whichever of bias / proj / partial tuned it.
           "VoPSE_msrvtt9k.pth": ("zeroshot", {})}
BPE = "bpe_simple_vocab_16e6.txt.gz"
# hyperparam field -> (config key it sets, the method families it applies to: None = all)
FIELDS = {"num_frames": "data.num_frames", "video_sample_type": "data.test_sampling",
          "vp_token_num": "method.tuner.num_prompts", "tp_prefix_token_num": "method.tuner.text_prefix",
          "tp_suffix_token_num": "method.tuner.text_suffix"}
# Fields checked against what this project computes (value -> required), or with no effect on results.
REQUIRED = {"pooling_type": "avg"}
NO_EFFECT = {"seed", "topk"}  # topk: the pipeline's default result count


class ModelScopeFolderError(ValueError):
    """A ModelScope model folder this project cannot use as it is; the message names the file or field."""


@dataclass
class ModelScopeFolder:
    path: Path
    weights: Path
    method: str
    settings: dict = field(default_factory=dict)  # dotted config key -> value
    topk: int = 10
    input_res: int | None = None

    @classmethod
    def read(cls, folder: str | Path) -> "ModelScopeFolder":
        path = Path(folder).expanduser()
        conf_file = path / "configuration.json"
        if not conf_file.is_file():
            raise ModelScopeFolderError(f"modelscope={folder}: no configuration.json (is it a ModelScope model folder?)")
        found = [name for name in WEIGHTS if (path / name).is_file()]
        if len(found) != 1:
            raise ModelScopeFolderError(f"modelscope={folder}: expected exactly one of {sorted(WEIGHTS)}, found {found}")
        hyper = json.loads(conf_file.read_text()).get("hyperparam")
        if not isinstance(hyper, dict):
            raise ModelScopeFolderError(f"{conf_file}: no `hyperparam` block")
        method, tuner = WEIGHTS[found[0]]
        settings = {f"method.tuner.{k}": v for k, v in tuner.items()}
        for key, value in hyper.items():
            settings.update(honour(conf_file, key, value, method))
        if "method.tuner.text_prefix" in settings or method == "vop":
            prompts = settings.get("method.tuner.text_prefix", 4) + settings.get("method.tuner.text_suffix", 4)
            settings["method.max_text_len"] = 77 - prompts
        return cls(path, path / found[0], method, settings, int(hyper.get("topk", 10)), hyper.get("input_res"))


def honour(conf_file: Path, key: str, value, method: str) -> dict:
    """One hyperparam field -> config settings, or an error naming it. Values only: a number or a
    name (a group, e.g. one holding `_target_`, or an interpolation would decide what code runs)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or (isinstance(value, str) and "${" in value):
        raise ModelScopeFolderError(f"{conf_file}: hyperparam.{key}={json.dumps(value)[:200]} is not allowed: "
                                    "expected a number or a name")
    if key in FIELDS:
        target = FIELDS[key]
        if key == "video_sample_type":  # the released code samples with X-Pool's index rule
            value = f"xpool_{value}"
        if target.startswith("method.tuner.") and method != "vop":
            return {}  # prompt sizes of the series file's (prompt-free) model: nothing to set
        return {target: value}
    if key in REQUIRED:
        if value != REQUIRED[key]:
            raise ModelScopeFolderError(f"{conf_file}: hyperparam.{key}={value!r} is not supported (only "
                                        f"{REQUIRED[key]!r}: mean of the frame embeddings)")
        return {}
    if key in NO_EFFECT or key == "input_res":
        return {}
    raise ModelScopeFolderError(f"{conf_file}: hyperparam.{key}={value!r} is a setting this project cannot honour "
                                f"(known: {sorted([*FIELDS, *REQUIRED, *NO_EFFECT, 'input_res'])})")


def folder_config(cfg: DictConfig, folder: ModelScopeFolder, overrides: Sequence[str] = ()) -> DictConfig:
    """`cfg` with the folder's method (unless `method=` is on the command line), its settings (a
    `method.*` / `data.*` key on the command line wins), its BPE tokenizer, and its checkpoint as `ckpt`."""
    cfg = cfg.copy()
    keys = {o.lstrip("+~").split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    with open_dict(cfg):
        if "method" not in keys:
            cfg.method = load_with_defaults(CONFIG_DIR / "method" / f"{folder.method}.yaml")
        for key, value in folder.settings.items():
            OmegaConf.update(cfg, key, value, force_add=True)
        for key, value in keys.items():  # the command line wins over the folder
            if key.startswith(("method.", "data.")):
                OmegaConf.update(cfg, key, yaml.safe_load(value), force_add=True)
        cfg.data.max_text_len = min(cfg.data.max_text_len, cfg.method.get("max_text_len") or 77)
        cfg.model.tokenizer = {"_target_": "vop.data.tokenizer.openai_bpe_tokenizer",
                               "bpe_file": str(folder.path / BPE) if (folder.path / BPE).is_file() else None}
        cfg.ckpt = str(folder.weights)
    size = (cfg.model.get("arch") or cfg.model.net).get("vision", {}).get("image_size")
    if folder.input_res is not None and size is not None and folder.input_res != size:
        raise ModelScopeFolderError(f"{folder.path / 'configuration.json'}: hyperparam.input_res={folder.input_res} "
                                    f"but model={cfg.model.name} takes {size}x{size} frames")
    return cfg


def read_features(folder: ModelScopeFolder) -> dict:
    """The folder's precomputed gallery (`*_features.pkl`), read with weights_only=True."""
    files = sorted(folder.path.glob("*_features.pkl"))
    if len(files) != 1:
        raise ModelScopeFolderError(f"modelscope={folder.path}: expected one *_features.pkl, found "
                                    f"{[f.name for f in files]}")
    try:
        content = torch.load(files[0], map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - name the file and why
        raise ModelScopeFolderError(f"{files[0]}: refused: it needs more than tensors, lists, dicts and strings "
                                    f"to unpickle (read with weights_only=True): {err}") from err
    missing = {"text_embeds", "vid_embeds", "vid_ids", "texts"} - set(content if isinstance(content, dict) else ())
    if missing:
        raise ModelScopeFolderError(f"{files[0]}: expected a dict with text_embeds, vid_embeds, vid_ids, texts; "
                                    f"missing {sorted(missing)}")
    text, video = content["text_embeds"].float(), content["vid_embeds"].float()  # [M, D], [N, D]
    if len(content["texts"]) != len(text) or len(content["vid_ids"]) != len(video):
        raise ModelScopeFolderError(f"{files[0]}: {len(content['texts'])} texts for {len(text)} text_embeds, "
                                    f"{len(content['vid_ids'])} vid_ids for {len(video)} vid_embeds")
    return {"text_emb": text, "video_emb": video, "video_ids": [str(v) for v in content["vid_ids"]],
            "captions": [str(t) for t in content["texts"]], "file": files[0]}
