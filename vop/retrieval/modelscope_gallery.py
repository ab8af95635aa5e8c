"""A ModelScope model folder as a search pipeline: its model as the encoder, its features file as
the gallery (vop/engine/modelscope_folder.py reads the folder)."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from vop.engine.modelscope_folder import CONFIG_DIR, ModelScopeFolder, folder_config, read_features
from vop.retrieval.gallery import Gallery
from vop.retrieval.query_encoder import Encoder


def retrieve_config(overrides: list[str]) -> DictConfig:
    """configs/retrieve.yaml composed with `overrides` (outside a Hydra app)."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="retrieve", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="retrieve", overrides=overrides)


def video_paths(cfg: DictConfig, ids: list[str]) -> list[str]:
    """`<data video dir>/<id>.mp4` where that file exists (MSR-VTT's layout; thumbnails on result
    pages), else ""."""
    data = cfg.data
    folder = Path(data.get("splits", {}).get("video_dir") or Path(data.get("root") or ".") / "videos")
    return [str(folder / f"{i}.mp4") if (folder / f"{i}.mp4").is_file() else "" for i in ids]


def modelscope_gallery(folder: ModelScopeFolder, encoder: Encoder, cfg: DictConfig) -> Gallery:
    """The folder's features as a gallery. The embeddings are used as stored (ModelScope ranks by the dot
    product with them); caption i describes video i when there are as many captions as videos."""
    f = read_features(folder)
    if f["text_emb"].shape[1] != f["video_emb"].shape[1]:
        raise ValueError(f"{f['file']}: text and video embeddings differ in width")
    same = len(f["captions"]) == len(f["video_ids"])
    owners = list(range(len(f["captions"]))) if same else [-1] * len(f["captions"])
    return Gallery(f["video_emb"], f["text_emb"], f["video_ids"], video_paths(cfg, f["video_ids"]), f["captions"],
                   owners, encoder.identity, OmegaConf.to_container(encoder.cfg, resolve=True))


def modelscope_pipeline_parts(folder: str | Path, cfg: DictConfig | None,
                              overrides: list[str]) -> tuple[Encoder, Gallery, int]:
    spec = ModelScopeFolder.read(folder)
    cfg = folder_config(cfg if cfg is not None else retrieve_config(overrides), spec, overrides)
    encoder = Encoder(cfg, ckpt=cfg.ckpt)
    return encoder, modelscope_gallery(spec, encoder, cfg), spec.topk
