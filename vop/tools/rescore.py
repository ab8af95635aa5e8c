"""Raw and post-processed metrics recomputed from a saved similarity matrix (scripts/rescore.py).

A `similarity.safetensors` that train.py or eval.py wrote gives the run's own metrics back exactly
(same matrix, same rank code); a `.npy` dumped by another codebase (CLIP4Clip, X-Pool, DGL) is scored
the same way, so numbers from different codebases meet on the same footing (docs/protocol.md).
"""
from __future__ import annotations

import json
from pathlib import Path

from vop.errors import ConfigError
from vop.file_writes import write_whole
from vop.metrics.postprocess import check_names, postprocessed_metrics
from vop.metrics.scores import metrics_from_scores
from vop.metrics.similarity_file import read_npy_similarity, read_similarity


def rescore(sims: str | Path, post=(), scale: float | None = None, captions: str | Path | None = None,
            bank: str | Path | None = None) -> dict[str, float]:
    """`<split>/t2v_R@1 ...` raw, and `<split>/<post>/t2v_R@1 ...` for each post-processing, as metrics.json names them."""
    post = check_names([post] if isinstance(post, str) else post)
    path = Path(sims)
    if path.suffix == ".npy":
        if scale is None:
            raise ConfigError(f"{path} is a .npy: say what its scores carry over cosine with scale=1 (cosine, "
                              "X-Pool) or scale=100 (logit-scaled, CLIP4Clip/DGL)")
        loaded = read_npy_similarity(path, float(scale), captions, bank)
    else:
        given = {k: v for k, v in (("scale", scale), ("captions", captions), ("bank", bank)) if v is not None}
        if given:
            raise ConfigError(f"{', '.join(given)}= only apply to a .npy; {path} carries its own mapping and bank")
        loaded = read_similarity(path)
    metrics = metrics_from_scores(loaded.text_video, loaded.scores, loaded.scores.T)
    metrics.update(postprocessed_metrics(loaded.scores, loaded.text_video, post, loaded.bank))
    return {f"{loaded.split}/{k}": v for k, v in metrics.items()}


def write_json(metrics: dict, out: str | Path) -> Path:
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    return write_whole(out, lambda tmp: tmp.write_text(text))
