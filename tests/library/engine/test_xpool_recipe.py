"""X-Pool's recipe (recipe=xpool): whole-frame random resized crop, uniform training frames, weight
decay on every tensor, 10 evaluations per epoch with the best test score reported."""
import json
from pathlib import Path

import torch

from tests.helpers import tiny_synthetic
from vop.commands.train import train
from vop.data.dataset import Collate
from vop.data.frames import fit_short_side, pad_videos
from vop.data.gpu_transforms import VideoTransform
from vop.engine.optim import param_groups
from vop.engine.assembly import build_model


def test_whole_frames_keep_their_aspect():
    frames = torch.randint(0, 256, (2, 90, 160, 3), dtype=torch.uint8)
    assert fit_short_side(frames, 45).shape == (2, 45, 80, 3)
    assert fit_short_side(frames.transpose(1, 2), 45).shape == (2, 80, 45, 3)


def test_padded_batch_crops_each_video_from_its_own_whole_frame():
    """A video's training crop inside a padded batch equals its crop alone: same box over its whole
    frame, and the padding (edge rows/columns repeated) never shows."""
    wide = torch.randint(0, 256, (3, 40, 100, 3), dtype=torch.uint8)
    tall = torch.randint(0, 256, (3, 90, 40, 3), dtype=torch.uint8)
    batch, sizes = pad_videos([wide, tall])
    assert batch.shape == (2, 3, 90, 100, 3) and sizes.tolist() == [[40, 100], [90, 40]]
    assert torch.equal(batch[0, :, :40, :100], wide) and (batch[0, :, 60:, 10] == wide[:, -1:, 10]).all()
    transform = VideoTransform(size=32, train=True)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6)]  # noqa: E731
    together = transform(batch, generator=gens(), sizes=sizes)
    for i, video in enumerate((wide, tall)):
        alone = transform(video[None], generator=[gens()[i]])
        torch.testing.assert_close(together[i], alone[0], atol=1e-4, rtol=0)
    collated = Collate(pad=True)([{"video": v, "index": i, "item": i, "video_id": str(i)}
                                  for i, v in enumerate((wide, tall))])
    assert torch.equal(collated["video"], batch) and collated["frame_hw"] == sizes.tolist()


def test_decay_all_decays_every_trainable_tensor(tmp_path):
    for decay_all, expected in ((False, {0.0, 0.2}), (True, {0.2})):
        cfg = tiny_synthetic("vop", tmp_path, ["method.lr=1e-4"])
        model, _, method, _ = build_model(cfg)
        model.clip.text_projection.weight.requires_grad_(True)  # a pretrained 2-d tensor too
        model.clip.text_model.final_layer_norm.bias.requires_grad_(True)  # and a 1-d one
        groups = param_groups(model, method, 1e-6, 1e-5, 0.2, decay_all=decay_all)
        assert {g["weight_decay"] for g in groups} == expected


def test_recipe_xpool_trains_with_ten_evaluations_per_epoch(tmp_path):
    cfg = tiny_synthetic("vop", tmp_path, ["recipe=xpool", "trainer.max_steps_per_epoch=3",
                                           "trainer.evals_per_epoch=3"])
    assert cfg.data.train_crop == "whole" and cfg.optim.decay_all
    assert cfg.data.train_sampling == cfg.data.test_sampling == "xpool_uniform"
    result = train(cfg)
    run = Path(cfg.paths.output_dir)
    evals = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [e for e in evals if "test/t2v_R@1" in e]
    assert len(evals) == 3  # after steps 1, 2 and 3 (the epoch end)
    best = max(e["test/t2v_R@1"] for e in evals)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test/best_t2v_R@1"] == best == result["test/best_t2v_R@1"]
    assert saved["test/t2v_R@1"] == evals[-1]["test/t2v_R@1"]  # the last-epoch protocol stays beside it
