"""The direction probe: a trained model on the synthetic `probe` split -> `probe/*` metrics.

The probe (vop/data/synthetic.py, `data.splits.num_probe`) holds pairs of videos that differ only
in time; vop/metrics/direction.py defines the accuracies. Single process: the synthetic benchmark
runs one.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from vop.data.frame_sampling import frame_indices
from vop.data.split import Split
from vop.data.synthetic import BACKGROUNDS, COLOURS, SHAPES
from vop.engine.embed import encode_captions
from vop.engine.rundir import prefixed
from vop.errors import ConfigError
from vop.metrics.direction import (counterfactual_v2t, direction_t2v_outcomes, direction_v2t_outcomes,
                                   pair_standard_error, static_t2v)

STATIC = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS)}


def check_reversible(video_frames: int, num_frames: int, sampling: str) -> None:
    """The twin must show the model exactly the reversed frames: evaluation sampling symmetric in time."""
    indices = frame_indices(video_frames, num_frames, sampling) if sampling == "uniform" else None
    if indices is None or not np.all(indices + indices[::-1] == video_frames - 1):
        raise ConfigError(f"direction probe: data.test_sampling={sampling} picks frames {indices} of "
                          f"data.splits.frames={video_frames}, which are not symmetric in time, so a video's twin "
                          f"would not show the same frames reversed; use uniform sampling with frames / "
                          f"num_frames an odd integer (e.g. {5 * num_frames} frames for {num_frames})")


def counterfactuals(caption: str, attributes: dict[str, str]) -> list[tuple[str, str]]:
    """(attribute, `caption` with that attribute's word replaced by each other value), e.g. red -> blue."""
    out = []
    for name, values in STATIC.items():
        word = re.compile(rf"\b{attributes[name]}\b")
        if len(word.findall(caption)) != 1:
            raise ValueError(f"direction probe: caption {caption!r} should name its {name} {attributes[name]!r} once")
        out += [(name, word.sub(other, caption)) for other in values if other != attributes[name]]
    return out


def static_v2t(split: Split, text_emb: torch.Tensor, video_emb: torch.Tensor, encode, score=None) -> dict[str, float]:
    """Own caption vs the same caption with shape, colour or background changed, per attribute and overall."""
    owners, altered, names = [], [], []
    for caption, video in zip(split.captions, split.caption_video):
        for name, text in counterfactuals(caption, split.info["attributes"][video]):
            owners.append(video)
            altered.append(text)
            names.append(name)
    alt_emb = encode(altered)  # [K, D]
    own_emb = text_emb[[split.caption_video.index(v) for v in range(split.num_videos)]]  # [N, D] first caption
    owners_t = torch.tensor(owners, device=video_emb.device)
    out = {"v2t_static_acc": counterfactual_v2t(video_emb, own_emb, alt_emb, owners_t, score)}
    for name in STATIC:
        keep = torch.tensor([n == name for n in names], device=video_emb.device)
        out[f"v2t_static_acc_{name}"] = counterfactual_v2t(video_emb, own_emb, alt_emb[keep], owners_t[keep], score)
    return out


@torch.inference_mode()
def probe_metrics(trainer) -> dict[str, float]:
    """R@K within the probe and the pairwise accuracies for `trainer`'s model -> {"probe/...": value}."""
    cfg, split = trainer.files.cfg, trainer.data.splits["probe"]
    check_reversible(split.info["params"]["frames"], cfg.data.num_frames, cfg.data.test_sampling)
    evaluator = trainer.evaluator("probe")
    metrics = evaluator(trainer.model)  # R@K among the probe's videos (twins included)
    text_emb, video_emb = evaluator.embeddings  # [M, D] in caption order, [N, D] ([N, T, D] frames) in video order
    # X-Pool: each caption pools the frames, so every comparison asks the model for its score
    score = trainer.model.similarity if trainer.model.text_conditioned else None
    links = torch.tensor(split.caption_video, device=video_emb.device)
    twin = torch.tensor(split.info["twin"], device=video_emb.device)
    static = [tuple(a[k] for k in STATIC) for a in split.info["attributes"]]

    def encode(captions: list[str]) -> torch.Tensor:
        return torch.cat([e for _, e in encode_captions(trainer.model, evaluator.tokenizer, captions,
                                                        evaluator.max_text_len, trainer.device, trainer.dtype)])

    trainer.model.eval()
    t2v = direction_t2v_outcomes(text_emb, video_emb, links, twin, score)  # [M]
    v2t = direction_v2t_outcomes(text_emb, video_emb, links, twin, score)  # [N]
    videos = torch.arange(split.num_videos, device=video_emb.device)
    # `@se`: the probe's own sampling error (pairs as units); make_table adds it to the spread over seeds.
    metrics.update({"t2v_direction_acc": 100.0 * t2v.mean().item(), "v2t_direction_acc": 100.0 * v2t.mean().item(),
                    "t2v_direction_acc@se": pair_standard_error(t2v, links, twin),
                    "v2t_direction_acc@se": pair_standard_error(v2t, videos, twin)})
    metrics["t2v_static_acc"] = static_t2v(text_emb, video_emb, links, static, score)
    metrics.update(static_v2t(split, text_emb, video_emb, encode, score))
    return prefixed(metrics, "probe")
