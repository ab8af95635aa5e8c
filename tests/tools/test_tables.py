"""make_table on fixture runs: layout, averaging, gains vs full, the paper's column, CSV, errors."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import REPO_ROOT
from vop.paper import PAPER_GAIN
from vop.tools.make_table import make_table



def write_run(folder: Path, method: str, t2v_r1: float, trainable: int = 10, total: int | None = 1000,
              data: str = "msrvtt9k") -> Path:
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"method": {"name": method}, "model": {"name": "clip_b32"},
                                     "data": {"name": data, "test_split": "test"}}), folder / "config.yaml")
    metrics = {f"test/{d}_{m}": 1.0 for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")}
    metrics.update({"test/t2v_R@1": t2v_r1, "trainable_params": trainable})
    if total is not None:
        metrics["total_params"] = total
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_table_from_a_multirun_folder(tmp_path):
    sweep = tmp_path / "multirun"
    write_run(sweep / "0_full", "full", 40.0, trainable=1000)
    write_run(sweep / "1_bias", "bias", 37.0)
    write_run(sweep / "2_bias", "bias", 38.0)  # a second seed: averaged
    write_run(sweep / "3_zeroshot", "zeroshot", 30.0, trainable=0)
    extra = write_run(tmp_path / "other" / "run", "bias", 20.0, data="didemo")
    markdown = make_table([sweep, extra], tmp_path / "out" / "table")
    lines = markdown.splitlines()
    assert "**data=msrvtt9k, model=clip_b32**" in lines and "**data=didemo, model=clip_b32**" in lines
    block = markdown.split("**data=msrvtt9k, model=clip_b32**")[1]
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]
    # Paper order: zeroshot, full, bias; bias is the mean of two runs, 2.5 below full.
    assert [r.split("|")[1].strip() for r in rows[:3]] == ["zeroshot", "full", "bias"]
    bias = rows[2].split("|")
    # Two runs: mean ± standard error (std 0.71 / sqrt 2); the gain's SE combines both rows' (full: one run).
    assert bias[3].strip() == "37.5 ± 0.5" and bias[-4].strip() == "-2.5 ± 0.5" and bias[-3].strip() == "-2.0"
    assert rows[1].split("|")[3].strip() == "**40.0**"  # the best t2v R@1; bias is 5 SE below it
    assert bias[-2].strip() == "2" and bias[2].strip() == "1.0"
    with open(tmp_path / "out" / "table.csv") as f:
        table = list(csv.DictReader(f))
    didemo = next(r for r in table if r["data"] == "didemo")
    assert didemo["R@1_gain_vs_full"] == ""  # no full run on that dataset: no gain, not a zero
    msr_bias = next(r for r in table if r["data"] == "msrvtt9k" and r["method"] == "bias")
    assert float(msr_bias["paper_R@1_gain_vs_full"]) == PAPER_GAIN["bias"]
    assert (tmp_path / "out" / "table.md").read_text() == markdown


def test_cli_and_errors(tmp_path):
    run = write_run(tmp_path / "r", "full", 40.0, total=None)  # an eval.py run: no total, so no %
    proc = subprocess.run([sys.executable, "scripts/make_table.py", str(run)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| full | - | 40.0 |" in proc.stdout
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        make_table([tmp_path / "empty"])
    (run / "metrics.json").write_text(json.dumps({"test/t2v_R@1": 1.0}))
    with pytest.raises(KeyError, match="lacks"):
        make_table([run])


def probe_run(folder: Path, method: str, t2v_r1: float, direction: float) -> Path:
    run = write_run(folder, method, t2v_r1, data="synthetic")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update({"probe/t2v_R@1": 10.0, "probe/t2v_direction_acc": direction, "probe/v2t_direction_acc": 50.0,
                    "probe/t2v_static_acc": 90.0, "probe/v2t_static_acc": 80.0})
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_error_bars_mark_differences_within_two_standard_errors(tmp_path):
    for seed, (full, vop, vop_p) in enumerate([(40.0, 39.0, 30.0), (42.0, 41.0, 31.0), (41.0, 43.0, 32.0)]):
        probe_run(tmp_path / f"full{seed}", "full", full, direction=50.0 + seed - 1)  # 49, 50, 51
        probe_run(tmp_path / f"vop{seed}", "vop", vop, direction=50.0)
        probe_run(tmp_path / f"vop_p{seed}", "vop_p", vop_p, direction=70.0 + seed)  # 70, 71, 72
    markdown = make_table([tmp_path])
    main, probe = markdown.split("**direction probe: data=synthetic, model=clip_b32**")
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
            for r in main.splitlines() if r.startswith("| ") and "method" not in r}
    # t2v R@1: full 41.0 ± 0.58 is best; vop 41.0 ± 1.15 within 2 SE (bold); vop_p 31.0 is not.
    assert rows["full"][1] == "**41.0 ± 0.6**" and rows["vop"][1] == "**41.0 ± 1.2**"
    assert rows["vop_p"][1] == "31.0 ± 0.6"
    assert rows["vop"][-3] == "+0.0 ± 1.3 ~" and rows["vop_p"][-3] == "-10.0 ± 0.8"  # ~: no clear difference
    prows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
             for r in probe.splitlines() if r.startswith("| ") and "method" not in r}
    # Direction: full 50 ± 0.58 and vop 50 ± 0 sit within 2 SE of 50 (~, blind); vop_p 71 does not.
    assert prows["full"][1] == "50.0 ± 0.6 ~" and prows["vop"][1] == "50.0 ± 0.00 ~"
    assert prows["vop_p"][1] == "**71.0 ± 0.6**" and prows["vop_p"][-1] == "3"
    make_table([tmp_path], tmp_path / "out")
    with open(tmp_path / "out.csv") as f:
        table = {r["method"]: r for r in csv.DictReader(f)}
    assert float(table["vop_p"]["probe_t2v_direction_acc"]) == 71.0
    assert abs(float(table["vop_p"]["probe_t2v_direction_acc_se"]) - 1 / 3 ** 0.5) < 1e-9



def test_probe_sampling_error_widens_the_direction_error_bar(tmp_path):
    for seed, direction in enumerate((51.5, 51.5)):  # two seeds agree: no spread over runs
        run = probe_run(tmp_path / f"full{seed}", "full", 40.0, direction=direction)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["probe/t2v_direction_acc@se"] = 1.0  # but the probe itself is only this precise
        (run / "metrics.json").write_text(json.dumps(metrics))
    probe = make_table([tmp_path]).split("**direction probe")[1]
    row = next(r for r in probe.splitlines() if r.startswith("| full"))
    assert row.split("|")[3].strip() == "**51.5 ± 1.0** ~"  # sqrt(0^2 + 1^2); 1.5 < 2 SE: not shown to see time


def test_rows_trained_differently_are_flagged(tmp_path, caplog):
    """A 6-epoch run beside a 5-step smoke run: the table says which settings differ (and warns)."""
    full = write_run(tmp_path / "full", "full", 40.0)
    smoke = write_run(tmp_path / "bias", "bias", 20.0)
    for run, epochs, steps in ((full, 6, 222), (smoke, 1, 5)):
        cfg = OmegaConf.load(run / "config.yaml")
        cfg.trainer = {"epochs": epochs, "max_steps_per_epoch": None if epochs == 6 else 5}
        OmegaConf.save(cfg, run / "config.yaml")
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "train/steps": steps}))
    with caplog.at_level("WARNING"):
        markdown = make_table([full, smoke])
    note = markdown.strip().splitlines()[-1]
    assert note.startswith("Settings differ between these rows (data=msrvtt9k, model=clip_b32)")
    assert "trainer.epochs: full 6, bias 1" in note and "train/steps: full 222, bias 5" in note
    assert "trainer.max_steps_per_epoch: full null, bias 5" in note and "data.batch_size" not in note
    assert note in caplog.text
    same = write_run(tmp_path / "again" / "full", "full", 41.0)
    assert "Settings differ" not in make_table([tmp_path / "again", write_run(tmp_path / "b2", "bias", 3.0)])
    assert same.is_dir()


def test_seeds_and_an_untrained_row_are_not_differing_settings(tmp_path):
    """Seeds are what a row's error bar averages over, and zero-shot trains no steps: neither is flagged."""
    for seed in (0, 1):
        for method in ("full", "bias"):
            run = write_run(tmp_path / f"{method}{seed}", method, 40.0 + seed)
            cfg = OmegaConf.load(run / "config.yaml")
            cfg.seed = seed
            OmegaConf.save(cfg, run / "config.yaml")
            metrics = json.loads((run / "metrics.json").read_text())
            (run / "metrics.json").write_text(json.dumps({**metrics, "train/steps": 124}))
    write_run(tmp_path / "zeroshot", "zeroshot", 30.0, trainable=0)  # no train/steps
    assert "Settings differ" not in make_table([tmp_path])
    smoke = write_run(tmp_path / "smoke" / "proj", "proj", 10.0)
    metrics = json.loads((smoke / "metrics.json").read_text())
    (smoke / "metrics.json").write_text(json.dumps({**metrics, "train/steps": 5}))
    assert "train/steps: " in make_table([tmp_path / "full0", tmp_path / "bias1", smoke])


def test_the_leaderboard_page_stands_alone_and_keeps_post_processing_apart(tmp_path):
    """--out also writes PREFIX.html: nothing fetched from elsewhere; a run's DSL numbers in their own group."""
    run = write_run(tmp_path / "runs" / "bias", "bias", 40.0)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "test/dsl/t2v_R@1": 47.25}))
    make_table([tmp_path / "runs"], tmp_path / "out" / "table")
    page = (tmp_path / "out" / "table.html").read_text()
    assert "<script" not in page and "http" not in page and "@import" not in page  # opens from disk as it is
    assert 'data-key="dsl/t2v_R@1">47.2' in page and 'data-key="t2v_R@1">40.0' in page
    assert "dsl: text→video" in page and "Figure 1" in page  # the post-processed group; published rows
    with open(tmp_path / "out" / "table.csv") as f:
        assert "dsl/t2v_R@1" not in next(csv.reader(f))  # the CSV keeps the raw columns it always had
