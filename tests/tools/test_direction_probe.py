"""The direction probe: pairs of synthetic videos that differ only in time, and its accuracies."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler

from tests.helpers import tiny_synthetic
from tests.pixels import decode_all, read_pixels
from vop.data.shard_sampler import ShardedSampler
from vop.data.synthetic import DIRECTION_PHRASES, OPPOSITE, load_synthetic
from vop.data.tokenizer import tokenize
from vop.engine.assembly import build_trainer
from vop.metrics.direction import (counterfactual_v2t, direction_t2v, direction_t2v_outcomes, direction_v2t,
                                   pair_standard_error, static_t2v)
from vop.tools.direction_probe import check_reversible, counterfactuals, probe_metrics

SMALL = dict(num_train=6, num_test=4, frames=10, seed=5)


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return load_synthetic(tmp_path_factory.mktemp("probe"), num_probe=6, **SMALL)


def test_probe_pairs_differ_only_in_time(probed: dict) -> None:
    probe = probed["probe"]
    assert (probe.num_videos, probe.num_captions) == (12, 12)
    assert probe.info["twin"] == [i ^ 1 for i in range(12)]
    for a in range(0, 12, 2):
        b = a + 1
        first, second = probe.info["attributes"][a], probe.info["attributes"][b]
        assert second == {**first, "direction": OPPOSITE[first["direction"]]}
        # The captions use one template: the same words but the direction phrase.
        one, two = probe.captions[a], probe.captions[b]
        assert one.replace(DIRECTION_PHRASES[first["direction"]], "#").replace(first["direction"], "#") == \
            two.replace(DIRECTION_PHRASES[second["direction"]], "#").replace(second["direction"], "#")
        frames_a, frames_b = decode_all(probe.video_paths[a]), decode_all(probe.video_paths[b])
        # The twin is the same frames played backwards (up to H.264 noise of a few grey levels).
        assert np.abs(frames_a[::-1].astype(int) - frames_b.astype(int)).mean() < 1.0
        assert read_pixels(frames_a)["direction"] == first["direction"]
        assert read_pixels(frames_b)["direction"] == second["direction"]


def test_probe_leaves_train_and_test_unchanged(probed: dict, tmp_path: Path) -> None:
    plain = load_synthetic(tmp_path, **SMALL)
    assert "probe" not in plain and Path(plain["train"].info["root"]).name == "v1_n6-4_f10_160x120_8fps_s5"
    assert Path(probed["train"].info["root"]).name == "v1_n6-4_f10_160x120_8fps_s5_p6"
    for name in ("train", "test"):
        assert plain[name].captions == probed[name].captions
        assert np.array_equal(decode_all(plain[name].video_paths[0]), decode_all(probed[name].video_paths[0]))
    with pytest.raises(ValueError, match="num_probe"):
        load_synthetic(tmp_path, num_probe=-1, **SMALL)


def test_direction_accuracies_against_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    text, video = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    links, twin = torch.arange(8), torch.arange(8) ^ 1
    sims = text @ video.T
    expected = 100 * np.mean([float(sims[m, m] > sims[m, m ^ 1]) for m in range(8)])
    assert direction_t2v(text, video, links, twin) == pytest.approx(expected)
    expected = 100 * np.mean([float(sims[n, n] > sims[n ^ 1, n]) for n in range(8)])  # video n: own vs twin caption
    assert direction_v2t(text, video, links, twin) == pytest.approx(expected)
    # A model blind to time embeds both twins alike: every comparison ties, which counts one half.
    blind = video[[0, 0, 2, 2, 4, 4, 6, 6]]
    assert direction_t2v(text, blind, links, twin) == 50.0


def test_static_accuracies_against_brute_force() -> None:
    gen = torch.Generator().manual_seed(1)
    text, video = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    links = torch.tensor([0, 1, 2, 3, 4, 5])
    static = [("a",), ("a",), ("b",), ("b",), ("c",), ("c",)]  # twins share their static attributes
    sims = text @ video.T
    per_caption = [np.mean([float(sims[m, m] > sims[m, n]) for n in range(6) if static[n] != static[m]])
                   for m in range(6)]
    assert static_t2v(text, video, links, static) == pytest.approx(100 * np.mean(per_caption))
    alt, owners = torch.randn(9, 4, generator=gen), torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 5])
    expected = np.mean([float(video[o] @ text[o] > video[o] @ alt[k]) for k, o in enumerate(owners.tolist())])
    assert counterfactual_v2t(video, text, alt, owners) == pytest.approx(100 * expected)


def test_counterfactual_captions_change_one_attribute() -> None:
    attributes = {"shape": "circle", "colour": "red", "background": "black", "direction": "left"}
    caption = "a red circle moves left on a black background"
    alts = counterfactuals(caption, attributes)
    assert len(alts) == 3 + 7 + 4  # every other shape, colour and background
    assert ("colour", "a blue circle moves left on a black background") in alts
    assert ("background", "a red circle moves left on a navy background") in alts
    assert all(len(set(a.split()) ^ set(caption.split())) == 2 for _, a in alts)
    with pytest.raises(ValueError, match="colour"):
        counterfactuals("a circle moves left on a black background", attributes)


def test_the_benchmark_recipe_shows_twins_the_same_frames() -> None:
    for count in range(1, 13):
        check_reversible(5 * count, count, "uniform")  # scripts/synthetic_benchmark.py: 5 frames per sample
    check_reversible(24, 8, "uniform")  # data=synthetic's defaults
    for frames, count, mode in ((16, 4, "uniform"), (24, 4, "uniform"), (20, 4, "rand")):
        with pytest.raises(ValueError, match=re.escape(f"data.splits.frames={frames}")):
            check_reversible(frames, count, mode)


def beats(own: float, other: float) -> float:
    return 1.0 if own > other else 0.5 if own == other else 0.0


@pytest.mark.parametrize("method", ["vop_p", "xpool"])  # xpool: every score is the caption pooling the frames
def test_probe_metrics_of_a_model(tmp_path: Path, method: str) -> None:
    """Untrained, so the numbers are noise: what is tested is that they are the probe's, recomputed
    here one comparison at a time from the probe split's embeddings."""
    cfg = tiny_synthetic(method, tmp_path, ["data.splits.num_probe=4", "data.splits.frames=20"])
    trainer = build_trainer(cfg)
    metrics = probe_metrics(trainer)
    split, evaluator = trainer.data.splits["probe"], trainer.evaluator("probe")
    text, video = evaluator.embeddings  # [8, D] captions, [8, D] videos ([8, T, D] frames): one caption each
    assert (split.num_videos, split.num_captions) == (8, 8)
    trainer.model.eval()
    # One caption and one video at a time (for vop_p the dot product of the two embeddings).
    pair = lambda t, v: float(trainer.model.similarity(t[None], v[None])[0, 0])  # noqa: E731
    with torch.no_grad():
        sims = [[pair(text[m], video[n]) for n in range(8)] for m in range(8)]
    links, twin, attributes = split.caption_video, split.info["twin"], split.info["attributes"]
    assert twin == [1, 0, 3, 2, 5, 4, 7, 6] and links == list(range(8))
    t2v = [beats(sims[m][v], sims[m][twin[v]]) for m, v in enumerate(links)]
    caption_of = {v: m for m, v in enumerate(links)}
    v2t = [beats(sims[caption_of[n]][n], sims[caption_of[twin[n]]][n]) for n in range(8)]
    static = [tuple(a[k] for k in ("shape", "colour", "background")) for a in attributes]
    t2v_static = [np.mean([beats(row[v], row[n]) for n in range(8) if static[n] != static[v]])
                  for row, v in zip(sims, links)]
    altered = [(v, words) for m, v in enumerate(links) for _, words in counterfactuals(split.captions[m], attributes[v])]
    with torch.no_grad():
        alt = trainer.model.encode_text(tokenize(evaluator.tokenizer, [t for _, t in altered], evaluator.max_text_len))
        v2t_static = [beats(sims[caption_of[v]][v], pair(alt[k], video[v])) for k, (v, _) in enumerate(altered)]
    pairs = [(t2v[a] + t2v[a + 1]) / 2 for a in range(0, 8, 2)]  # twins are videos 2i and 2i+1
    expected = {"t2v_direction_acc": 100 * np.mean(t2v), "v2t_direction_acc": 100 * np.mean(v2t),
                "t2v_static_acc": 100 * np.mean(t2v_static), "v2t_static_acc": 100 * np.mean(v2t_static),
                "t2v_direction_acc@se": 100 * np.std(pairs, ddof=1) / np.sqrt(4),
                "t2v_R@1": 100 * np.mean([max(row) == row[v] for row, v in zip(sims, links)])}
    assert {k: metrics[f"probe/{k}"] for k in expected} == pytest.approx(expected, abs=1e-4)
    assert metrics["probe/t2v_direction_acc"] in {100 * k / 16 for k in range(17)}  # 8 captions, ties count half


def test_hflip_option_reaches_the_training_transform(tmp_path: Path) -> None:
    for extra, expected in (([], 0.0), (["data.hflip=0.5"], 0.5)):  # synthetic: no flips, its captions say left/right
        trainer = build_trainer(tiny_synthetic("bias", tmp_path, extra))
        assert trainer.training.transform.hflip == expected


def test_twins_split_for_training(tmp_path: Path) -> None:
    splits = load_synthetic(tmp_path, num_twins=3, **SMALL)
    twins = splits["twins"]
    assert (twins.num_videos, twins.num_captions) == (6, 6) and twins.info["twin"] == [1, 0, 3, 2, 5, 4]
    assert all(v.startswith("twins") for v in twins.video_ids) and "probe" not in splits
    for a in (0, 2, 4):
        assert twins.info["attributes"][a + 1]["direction"] == OPPOSITE[twins.info["attributes"][a]["direction"]]
    assert splits["test"].captions == load_synthetic(tmp_path, **SMALL)["test"].captions


@pytest.mark.parametrize("world", [1, 2])
def test_grouped_shuffle_keeps_twins_in_one_batch(world: int) -> None:
    data, batch = list(range(24)), 8
    shards = [list(BatchSampler(ShardedSampler(data, world, r, seed=3, drop_last=True, group=2), batch // world,
                                drop_last=True)) for r in range(world)]
    epoch = []
    for k in range(len(shards[0])):
        global_batch = sorted(sum((s[k] for s in shards), []))
        assert all(i ^ 1 in global_batch for i in global_batch)  # every item's twin is in its batch
        epoch += global_batch
    assert sorted(epoch) == data  # a permutation of everything
    plain = list(ShardedSampler(data, 1, 0, seed=3, drop_last=True))
    assert not all(i ^ 1 in b for b in (plain[j:j + batch] for j in (0, 8, 16)) for i in b)  # ungrouped: split


def test_grouped_shuffle_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shuffle_group=2 must .* divide the 5"):
        ShardedSampler(list(range(5)), group=2)
    cfg = tiny_synthetic("bias", tmp_path, ["data.shuffle_group=3"])  # batch 8
    with pytest.raises(ValueError, match="data.batch_size=8 must be divisible by data.shuffle_group=3"):
        build_trainer(cfg)


def test_pair_standard_error_against_brute_force() -> None:
    outcomes = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.0, 1.0])  # items of videos 0..7, pairs (0,1) (2,3) ...
    videos, twin = torch.arange(8), torch.arange(8) ^ 1
    pair_means = np.array([0.5, 1.0, 0.5, 0.5])
    expected = 100 * pair_means.std(ddof=1) / 2
    assert pair_standard_error(outcomes, videos, twin) == pytest.approx(expected)
    # Items listed in another order, or two items of one video: the pair is still the unit.
    order = torch.tensor([7, 2, 5, 0, 1, 3, 6, 4])
    assert pair_standard_error(outcomes[order], videos[order], twin) == pytest.approx(expected)
    assert direction_t2v_outcomes(torch.eye(2), torch.eye(2), torch.arange(2), torch.tensor([1, 0])).tolist() == [1, 1]


def test_position_readout_regression_separates_signal_from_noise() -> None:
    from vop.tools import position_readout as readout
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=gen)
    linear = (x[:, :2] * 10 + 50).double()  # a position the embedding encodes
    assert min(readout.ridge_r2(x, linear, train=200)) > 0.99
    noise = torch.randn(300, 2, generator=gen).double()  # one it does not
    assert max(readout.ridge_r2(x, noise, train=200)) < 0.05
