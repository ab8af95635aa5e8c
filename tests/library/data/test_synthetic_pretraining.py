"""Stage 1 of the synthetic benchmark: motion-free captions, and loading the tiny CLIP's weights."""
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from safetensors.torch import save_file

from tests.helpers import compose_cfg
from tests.pixels import decode_all
from vop.data.synthetic import DIRECTION_PHRASES, DIRECTIONS
from vop.data.synthetic_stills import load_synthetic_stills


def test_still_captions_never_mention_motion(tmp_path):
    splits = load_synthetic_stills(root=tmp_path, num_train=8, num_test=4, frames=2, width=32, height=32)
    motion = set(DIRECTIONS) | {w for p in DIRECTION_PHRASES.values() for w in p.split()} | {"moves", "moving"}
    for split in splits.values():
        for caption, video in zip(split.captions, split.caption_video):
            attributes = split.info["attributes"][video]
            assert not motion & set(caption.split()), caption
            assert attributes["colour"] in caption and attributes["shape"] in caption


def test_still_captions_say_where_the_shape_is(tmp_path):
    splits = load_synthetic_stills(root=tmp_path, num_train=12, num_test=6, frames=10, width=96, height=96,
                                   positions=True)
    phrases = {w for p in DIRECTION_PHRASES.values() for w in p.split() if w not in ("left", "right", "the")}
    for split in splits.values():
        for caption, video in zip(split.captions, split.caption_video):
            assert not (phrases | {"moves", "moving"}) & set(caption.replace(",", "").split()), caption
            frame = decode_all(split.video_paths[video])[5].astype(int)  # the middle frame, uniform sampling
            mask = np.abs(frame - frame[0, 0]).sum(-1) > 60  # [H, W] shape pixels (a corner is background)
            ys, xs = np.nonzero(mask)
            column = ("left", "centre", "right")[min(int(3 * (xs.mean() + 0.5) / 96), 2)]
            row = ("top", "middle", "bottom")[min(int(3 * (ys.mean() + 0.5) / 96), 2)]
            words = set(caption.split(", ")[-1].split())
            assert (column in words or column == "centre") and (row in words or row == "middle"), (caption, row, column)


def tiny(tmp_path, *overrides):
    return instantiate(compose_cfg("train", ["model=clip_tiny", *overrides], tmp_path).model.net)


def test_clip_tiny_loads_full_weights(tmp_path):
    source = tiny(tmp_path, "model.net.seed=1")
    weights = tmp_path / "w.safetensors"
    save_file({n: p.detach().contiguous() for n, p in source.named_parameters()}, str(weights))
    loaded = tiny(tmp_path, f"model.net.weights={weights}")  # seed 0 init, then the file
    assert all(torch.equal(p, source.get_parameter(n)) for n, p in loaded.named_parameters())
    partial = {n: p.detach().contiguous() for n, p in list(source.named_parameters())[1:]}
    save_file(partial, str(weights))
    # Hydra wraps the model's error; its message must still name the key and what is wrong.
    with pytest.raises(InstantiationException, match="model.net.weights=.*missing"):
        tiny(tmp_path, f"model.net.weights={weights}")
    with pytest.raises(InstantiationException, match="no such file"):
        tiny(tmp_path, f"model.net.weights={tmp_path / 'none.safetensors'}")
