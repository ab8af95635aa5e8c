"""Your own videos, end to end, the way a user runs them (README "Your own videos"): a collection of
real mp4 / mkv / avi files in subfolders with one corrupt file and captions as .csv, .jsonl and
.json; the videos are checked, `method=full` (from random weights) and `method=bias` (on a small
pretrained CLIP) are trained and rank their own test split above the untrained model, a folder
gallery skips and counts the corrupt file, and the full run exports to a Hugging Face folder that
plain transformers code loads.

The full run is a real train.py process (its run folder is named after the videos folder), and so
are eval.py and retrieve.py where a trained run's data keys go over its config; the other steps run
the same commands on the same arguments in this interpreter (tests/helpers.py command_in_process)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import CLIPModel, CLIPTokenizer

from hydra import compose, initialize_config_dir

from tests.helpers import CONFIG_DIR, SMALL_SYNTHETIC, assert_one_block, cli, command_in_process, in_process
from vop.data.sample_collection import BROKEN, write_collection
from vop.commands.eval import evaluate_run
from vop.commands.retrieve import retrieve
from vop.commands.train import train as train_command
from vop.retrieval.query_encoder import Encoder
from vop.tools.check_videos import check_dataset
from vop.tools.export_hf import export_run

# The README's settings, with 4 frames and no per-epoch evaluation (the same runs in half the time).
TINY = ["model=clip_tiny", "trainer.device=cpu", "trainer.progress=false", "data.num_frames=4",
        "data.batch_size=8", "data.eval_batch_size=8"]
FAST = ["trainer.eval_every_epoch=false"]
NUM_TEST = 10


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> dict[str, Path]:
    return write_collection(tmp_path_factory.mktemp("user") / "data" / "my_clips", num_test=NUM_TEST)


def data(collection, fmt: str) -> list[str]:
    return ["data=custom", f"data.videos={collection['videos']}", f"data.captions={collection[fmt]}"]


def metrics_of(proc, logs: Path, command: str) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((logs / command / "latest" / "metrics.json").read_text())


def run_metrics(proc, tmp: Path) -> dict:
    """metrics.json of a command_in_process run under `tmp`."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "run" / "metrics.json").read_text())


def train(collection, fmt: str, tmp: Path, *extra: str) -> dict:
    return run_metrics(command_in_process(train_command, "train", tmp, *data(collection, fmt), *TINY, *FAST, *extra),
                       tmp)


def untrained(collection, fmt: str, tmp: Path, *extra: str) -> dict:
    return run_metrics(command_in_process(evaluate_run, "eval", tmp, *data(collection, fmt), "method=zeroshot", *TINY,
                                          *extra), tmp)


def mean_ranks(metrics: dict) -> float:
    return metrics["test/t2v_MnR"] + metrics["test/v2t_MnR"]


@pytest.fixture(scope="module")
def full_run(collection, tmp_path_factory) -> tuple[Path, dict]:
    """train.py itself, as the README runs it (in 4 frames, no per-epoch evaluation)."""
    logs = tmp_path_factory.mktemp("full")
    metrics = metrics_of(cli("train.py", *data(collection, "csv"), *TINY, *FAST, "method=full", "method.lr=1e-3",
                             "trainer.epochs=8", f"paths.log_dir={logs}"), logs, "train")
    return (logs / "train" / "latest").resolve(), metrics


def test_check_videos_names_the_corrupt_file(collection, tmp_path):
    manifest = tmp_path / "manifest.jsonl"  # not the default <videos>/manifest.jsonl: the other runs skip at run time
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):  # as scripts/check_videos.py composes
        cfg = compose(config_name="tools", overrides=[*data(collection, "csv"), f"data.manifest={manifest}"])
    proc = in_process(lambda: check_dataset(cfg))  # the script's real process: tests/test_docs.py (README)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(line)["status"] for line in manifest.read_text().splitlines()].count("ok") == 40
    assert f"unreadable: {collection['videos'] / BROKEN}" in proc.stderr
    assert "41 videos: 40 ok, 0 missing, 1 unreadable" in proc.stdout + proc.stderr


def test_full_from_random_weights_ranks_its_test_split_above_the_untrained_model(collection, full_run, tmp_path):
    run, trained = full_run
    before = untrained(collection, "csv", tmp_path)
    assert run.name.endswith("_full_my_clips")  # named after the videos folder
    assert (trained["test/num_videos"], trained["train/num_videos"]) == (NUM_TEST, 31)  # the split column's
    assert trained["train/bad_videos"] == 1  # the corrupt file: skipped and counted, the run went on
    assert trained["test/t2v_R@1"] >= before["test/t2v_R@1"] + 20
    assert mean_ranks(trained) < mean_ranks(before) - 3


def test_bias_on_a_pretrained_tiny_clip_ranks_its_test_split_above_it(collection, tmp_path):
    """From random weights BitFit cannot move (docs/own_videos.md): tuned here, as on real CLIP, from
    a pretrained model, a tiny CLIP fully trained for one epoch on other videos (the synthetic set)."""
    pre = tmp_path / "pretrain"
    proc = command_in_process(train_command, "train", pre, "data=synthetic", "method=full", "method.lr=1e-3",
                              "trainer.epochs=1", *TINY, *FAST, *[o for o in SMALL_SYNTHETIC if o.startswith("data.splits")],
                              "data.splits.num_train=96")
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = f"model.net.weights={pre / 'run' / 'checkpoint.safetensors'}"
    before = untrained(collection, "jsonl", tmp_path / "before", weights)
    tuned = train(collection, "jsonl", tmp_path / "bias", "method=bias", "method.lr=1e-2", "method.lr_new=1e-2",
                  "trainer.epochs=8", weights)
    assert tuned["trainable_params"] < tuned["total_params"] / 50  # biases only
    assert mean_ranks(tuned) < mean_ranks(before) - 0.3  # measured: 5.20 against 5.95


def test_a_folder_gallery_skips_and_counts_the_corrupt_file_and_text_finds_captions(collection, full_run, tmp_path):
    run, _ = full_run
    gallery = tmp_path / "my_clips.safetensors"
    proc = command_in_process(retrieve, "retrieve", tmp_path, "action=build", f"ckpt={run}",
                              f"videos={collection['videos']}", f"captions={collection['json']}", f"gallery={gallery}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"skipped unreadable video {collection['videos'] / BROKEN}" in proc.stderr
    assert "skipped 1 of 41 videos that cannot be read, and their 1 captions" in proc.stderr
    query = "a red circle moves left on a black background"  # clip 00's first caption
    proc = command_in_process(retrieve, "retrieve", tmp_path, f"gallery={gallery}", f"query={query}", "topk=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "beach/clip 00.mp4" in proc.stdout and json.dumps(query) in proc.stdout


def test_the_full_run_exports_to_a_folder_plain_transformers_loads(full_run, tmp_path):
    run, _ = full_run
    proc = in_process(lambda: export_run(run, tmp_path / "hf"))  # the script's process: tests/library/models/test_hf_export.py
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, tokenizer = CLIPModel.from_pretrained(tmp_path / "hf").eval(), CLIPTokenizer.from_pretrained(tmp_path / "hf")
    captions = ["a blue cross moves up on a gray background", "waves"]
    with torch.no_grad():
        features = model.get_text_features(**tokenizer(captions, padding=True, return_tensors="pt"))
    text = torch.nn.functional.normalize(features.pooler_output, dim=-1)
    torch.testing.assert_close(text, Encoder.from_run(run).encode_texts(captions), rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def held_out_run(collection, tmp_path_factory) -> Path:
    """A short run on the .json captions (no split column: a fifth held out with split_seed 0)."""
    tmp = tmp_path_factory.mktemp("held_out")
    captions = json.loads(collection["json"].read_text())
    del captions[BROKEN]  # the draw would put it in the test split, which has to be readable
    (tmp / "captions.json").write_text(json.dumps(captions))
    train({**collection, "json": tmp / "captions.json"}, "json", tmp, "method=full", "trainer.epochs=1",
          "trainer.max_steps_per_epoch=1")
    return tmp / "run"


def test_eval_and_build_take_the_held_out_draw_from_the_command_line(held_out_run, collection, tmp_path):
    """`data.test_fraction=`/`data.split_seed=` (with or without `+`) reach the trained run's parser:
    they were refused by Hydra, and with `+` the run's stored 0.2 silently stayed."""
    counts = {}
    for extra in ([], ["data.test_fraction=0.3"], ["+data.test_fraction=0.3", "+data.split_seed=1"]):
        tmp = tmp_path / str(len(counts))
        proc = command_in_process(evaluate_run, "eval", tmp, f"ckpt={held_out_run}", *extra)
        counts[tuple(extra)] = run_metrics(proc, tmp)["test/num_videos"]
        seed = 1 if extra[1:] else 0
        assert f"data.split_seed={seed})" in proc.stdout + proc.stderr, proc.stdout[-2000:]
    assert list(counts.values()) == [8, 12, 12]  # a fifth, then 0.3 of the 40 captioned videos

    def gallery_ids(*extra: str, real_process: bool = False) -> list[str]:
        path = tmp_path / f"gallery{len(extra)}.safetensors"
        args = ("action=build", f"ckpt={held_out_run}", "split=test", f"gallery={path}", *extra, "trainer.progress=false")
        proc = cli("retrieve.py", *args) if real_process else command_in_process(retrieve, "retrieve", tmp_path, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(safe_open(str(path), "pt").metadata()["info"])["video_ids"]

    # another draw of the same size; retrieve.py itself hands the data key over the run's config
    assert gallery_ids() != gallery_ids("data.split_seed=3", real_process=True)


def test_a_key_the_trained_run_lacks_is_one_block(full_run, tmp_path):
    proc = cli("eval.py", f"ckpt={full_run[0]}", "data.test_fractoin=0.3", f"paths.log_dir={tmp_path}")
    assert_one_block(proc, "data.test_fractoin: the trained run's data group (my_clips",
                     "did you mean data.test_fraction?")
    proc = command_in_process(evaluate_run, "eval", tmp_path, "method=zeroshot", "model=clip_tiny", "+data.split_seed=1")
    assert_one_block(proc, "data.split_seed: nothing in this run reads it (data msrvtt9k does not use it)")
