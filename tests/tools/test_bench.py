"""The benchmark scripts whose figures the docs quote, on the CPU at their smallest: the throughput
benchmark's loader figures per data path and its GPU-side measurements' code path with the tiny model
(figures meaningless there, structure checked); bench_decode, bench_retrieval, bench_serve and
synthetic_benchmark as documented, their printed tables read back and checked; bench_build's table for the
tiny model."""
import json
import math
import re

import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.helpers import CONFIG_DIR, SMALL_MODEL, SMALL_SYNTHETIC, compose_cfg, main_in_process
from vop.commands.retrieve import retrieve
from vop.engine.assembly import load_splits
from vop.tools import bench_build
from vop.tools import bench_throughput as bench


def bench_cfg(tmp_path):
    data = [o for o in SMALL_SYNTHETIC if not o.startswith(("data.num_workers", "data.batch_size"))]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("bench", [f"paths.data_dir={tmp_path / 'data'}", f"paths.output_dir={tmp_path / 'run'}",
                                 "data=synthetic", "model=clip_tiny", *data, "data.num_workers=0",
                                 "bench.batch_size=4", "bench.num_frames=4", "bench.warmup=1", "bench.steps=2",
                                 "bench.build_cache_if_missing=true", "bench.methods=[bias]", "bench.checkpointing_ceiling=[bias]"])


def test_cpu_run_reports_loader_throughput_per_path(tmp_path):
    cfg = bench_cfg(tmp_path)
    result = bench.run_bench(cfg)
    assert set(result["loader"]) == {"decord", "frames_cpu"} and all(v["videos_per_s"] > 0 for v in result["loader"].values())
    if not torch.cuda.is_available():
        assert set(result["skipped"]) == {"nvdec", "frames_gpu"} and "CUDA" in result["skipped"]["nvdec"]
        assert "train" not in result
    assert json.loads((tmp_path / "run" / "bench.json").read_text()) == result


def test_gpu_measurements_code_path_runs_on_cpu(tmp_path, monkeypatch):
    from vop.engine.trainer import Trainer

    calls, real = [], Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    cfg = bench_cfg(tmp_path)
    splits = load_splits(cfg, "train", "test")
    decoder, _ = bench.make_decoder("decord", cfg, splits)
    out = bench.gpu_measurements(cfg, torch.device("cpu"), torch.float32, {"decord": decoder}, splits["train"],
                                 splits["test"], bench.instantiate(cfg.model.tokenizer))
    assert set(out["ceiling"]) == {"bias", "bias+ckpt"}
    assert out["train"]["bias"]["decord"]["ratio_to_ceiling"] > 0 and out["eval"]["decord"]["frames_per_s"] > 0
    assert len(calls) == 3 * (1 + 2)  # the trainer's own step: ceiling, ceiling+ckpt, decord; warmup 1 + 2 steps


# ------------------------------------------------------------ the other benchmark scripts, at their smallest
# Each runs as documented (its __main__, in this interpreter) on a few small inputs; its printed table is
# read back: every method present, figures finite, ratios positive, and what the figures must satisfy.
def number(text: str) -> float:
    value = float(text.replace(",", "").removesuffix("x"))
    assert math.isfinite(value), text
    return value


DECODE_VIDEOS = ["bunny", "bikes", "bikes_gop250", "generated_gop250", "generated_gop25", "prepared_3fps"]
DECODE_METHODS = ["decord", "decord short_side=32", "pyav short_side=32", "torchcodec", "torchcodec short_side=32",
                  "opencv seek (X-Pool)"]  # the test extra installs torchcodec and OpenCV


def test_bench_decode_table(tmp_path):
    proc = main_in_process("scripts/bench_decode.py", "--rounds", "1", "--frames", "2", "--size", "32",
                           "--seconds", "1", "--video-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert lines[head].split() == ["method", *DECODE_VIDEOS, "all", "vs", "OpenCV", "mean", "|diff|"]
    end = next(i for i, line in enumerate(lines) if line.startswith("videos/s"))
    rows = {line[:28].strip(): line[28:].split() for line in lines[head + 2:end]}  # method names hold spaces
    assert list(rows) == DECODE_METHODS and all(len(cells) == len(DECODE_VIDEOS) + 3 for cells in rows.values())
    overall = {m: number(cells[len(DECODE_VIDEOS)]) for m, cells in rows.items()}
    for method, cells in rows.items():
        rates = [number(c) for c in cells[:len(DECODE_VIDEOS)]]  # videos/s
        assert min(rates) > 0
        # 'all' = every video once per round: the harmonic mean of the per-video rates
        assert overall[method] == pytest.approx(len(rates) / sum(1 / r for r in rates), rel=0.01)
        assert number(cells[-2]) == pytest.approx(overall[method] / overall["opencv seek (X-Pool)"], rel=0.01, abs=0.01)
        assert 0 <= number(cells[-1]) < 5  # mean grey-level difference from the first row: the same frames
    assert rows["decord"][-1] == "0.00" and rows["opencv seek (X-Pool)"][-2] == "1.00x"
    assert all(f"  {name}: " in proc.stdout for name in DECODE_VIDEOS)


RETRIEVAL_ROW = re.compile(r"  (?P<name>exact fp32 \(torch\)|exact fp16 \(torch\)|faiss \w+ \S+)\s+(?P<build>\S+)\s+(?P<mib>\S+)"
                           r"\s+(?P<rss>\S+)\s+(?P<one>\S+)\s+(?P<batch>\S+)\s+(?P<recall>\S+)")


def test_bench_retrieval_table():
    """Exact fp32 and fp16, faiss flat, IVF, IVF-SQ8 and IVF-PQ side by side on clustered galleries: the index
    bytes per million rows are what each stores, the exact ones find exact fp32's top-10, the ratio line
    is the table's."""
    sizes, dim = [1000, 4000], 64
    proc = main_in_process("scripts/bench_retrieval.py", "--sizes", *map(str, sizes), "--queries", "8", "--repeats", "1",
                           "--dim", str(dim), "--clusters", "10", "--m", "16", "--nbits", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = proc.stdout.split("\ngallery ")[1:]
    assert [int(b.split(" x ")[0].replace(",", "")) for b in blocks] == sizes
    for n, block in zip(sizes, blocks):
        lines = block.splitlines()
        assert lines[1].split() == ["index", "build", "s", "MiB/1M", "rows", "RSS", "+MiB", "1", "query", "ms", "ms/query",
                                    "recall@10"]
        rows = [RETRIEVAL_ROW.fullmatch(line) for line in lines[2:8]]
        assert all(rows), block
        nlist = min(int(4 * math.sqrt(n)), n // 39)  # faiss wants >= 39 rows per cluster
        assert [r["name"] for r in rows] == ["exact fp32 (torch)", "exact fp16 (torch)", "faiss flat Flat",
                                             f"faiss ivf IVF{nlist},Flat", f"faiss ivfsq8 IVF{nlist},SQ8",
                                             f"faiss ivfpq IVF{nlist},PQ16x4"]
        fig = {r["name"].split()[1]: {k: number(r[k]) for k in ("build", "mib", "one", "batch", "recall")} for r in rows}
        assert all(f[k] >= 0 for f in fig.values() for k in ("build", "one", "batch"))
        float32 = dim * 4 * 1e6 / 2 ** 20  # MiB per million rows
        assert fig["fp32"]["mib"] == pytest.approx(float32, abs=0.06)
        assert fig["fp16"]["mib"] == pytest.approx(float32 / 2, abs=0.06)
        assert float32 <= fig["flat"]["mib"] < float32 * 1.01 and float32 < fig["ivf"]["mib"]  # ivf: + ids, centroids
        assert fig["ivfpq"]["mib"] < fig["ivfsq8"]["mib"] < float32 / 2  # 8 and 64 bytes of codes + 8 of id a row
        assert fig["fp32"]["recall"] == fig["flat"]["recall"] == 1.0 and fig["fp16"]["recall"] >= 0.9
        assert all(0 < fig[k]["recall"] <= 1 for k in ("ivf", "ivfsq8", "ivfpq"))
        ratios = re.fullmatch(r"  vs exact fp32: fp16 (\S+)x smaller, (\S+)x faster, flat (\S+)x smaller, (\S+)x faster, "
                              r"ivf (\S+)x smaller, (\S+)x faster, ivfsq8 (\S+)x smaller, (\S+)x faster, "
                              r"ivfpq (\S+)x smaller, (\S+)x faster", lines[8])
        assert ratios, lines[8]
        for i, name in enumerate(["fp16", "flat", "ivf", "ivfsq8", "ivfpq"]):
            assert number(ratios[2 * i + 1]) == pytest.approx(float32 / fig[name]["mib"], rel=0.05)
            assert number(ratios[2 * i + 2]) > 0


SERVE_ROW = re.compile(r"  (?P<name>in-process pipeline|HTTP, 1 client|HTTP, 8 clients at once)\s+(?P<p50>\S+)\s+(?P<p95>\S+)")
LARGE_ROW = re.compile(r"  (?P<name>exact fp32 \(TorchIndex\)|exact fp16 \(precision=fp16\)|faiss IVF nlist (?P<nlist>\d+) "
                       r"nprobe (?P<nprobe>\d+))\s+(?P<ms>\S+)\s+(?P<recall>\S+)\s+(?P<build>\S+)")


def test_bench_serve_table(tmp_path):
    """The served API over HTTP (retrieve.py action=serve in its own process) beside the in-process pipeline."""
    gallery = tmp_path / "gallery.safetensors"
    overrides = ["action=build", f"gallery={gallery}", "split=test", "model=clip_tiny", "method=zeroshot", "data=synthetic",
                 *SMALL_SYNTHETIC]
    retrieve(compose_cfg("retrieve", overrides, tmp_path), overrides)
    proc = main_in_process("scripts/bench_serve.py", "--gallery", str(gallery), "--requests", "8", "--sizes", "2000",
                           "--dim", "64", "--clusters", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.is_grad_enabled()  # the script left this interpreter's autograd as it was
    served, large = proc.stdout.split("\n\n")[1:]
    assert served.splitlines()[0] == f"16-video gallery {gallery}, 8 text queries, top-10:"
    rows = [SERVE_ROW.fullmatch(line) for line in served.splitlines()[2:5]]
    assert all(rows) and [r["name"] for r in rows] == ["in-process pipeline", "HTTP, 1 client", "HTTP, 8 clients at once"]
    assert all(0 < number(r["p50"]) <= number(r["p95"]) for r in rows)
    summary = re.fullmatch(r"  server overhead \(HTTP p50 - in-process p50\): (\S+) ms; 8 clients: (\S+) queries/s",
                           served.splitlines()[5])
    assert summary and number(summary[1]) == pytest.approx(number(rows[1]["p50"]) - number(rows[0]["p50"]), abs=0.02)
    assert number(summary[2]) > 0
    assert large.splitlines()[0] == "2,000 x 64 clustered gallery (10 clusters), 64 queries from the mixture, top-10:"
    rows = [LARGE_ROW.fullmatch(line) for line in large.splitlines()[2:5]]
    assert all(rows) and all(number(r["ms"]) >= 0 and number(r["build"]) >= 0 for r in rows)
    assert number(rows[0]["recall"]) == 1.0 and number(rows[1]["recall"]) >= 0.9  # fp16: a few near-ties swap
    ivf = rows[2]
    assert int(ivf["nlist"]) == int(4 * math.sqrt(2000)) and (number(ivf["recall"]) >= 0.95 or ivf["nprobe"] == "128")


def markdown_table(text: str, first_column: str) -> list[dict[str, str]]:
    """The markdown table whose header starts with `first_column`, as a list of {column: cell}."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    columns = [c.strip() for c in lines[head].strip("|").split("|")]
    rows = []
    for line in lines[head + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def cell_value(cell: str) -> float:
    """'**12.5 ± 0.3** ~' -> 12.5 (bold: best; '~': within two standard errors)."""
    return number(cell.replace("**", "").removesuffix(" ~").split(" ± ")[0])


def test_synthetic_benchmark_table(tmp_path):
    """Both stages at their smallest, five methods (one with the +t suffix; lora through peft; xpool's
    text-conditioned pooling, probe included); the printed tables hold a row per method whose figures
    are those of its run's metrics.json."""
    methods, out = ["zeroshot", "full", "lora", "xpool", "vop_f+t"], tmp_path / "out"  # the table's order
    proc = main_in_process("scripts/synthetic_benchmark.py", "--out", str(out), "--data-dir", str(tmp_path / "data"),
                           "--methods", *methods, "--seeds", "1", "--stage1-videos", "32", "--stage1-epochs", "1",
                           "--stage2-videos", "32", "--stage2-epochs", "1", "--test-videos", "8", "--probe-pairs", "2",
                           "--frames", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = markdown_table(proc.stdout, "method")
    assert [r["method"] for r in results] == methods and all(r["runs"] == "1" for r in results)
    full = cell_value(results[1]["t2v R@1"])
    for row in results:
        saved = json.loads((out / "stage2" / row["method"] / "seed0" / "metrics.json").read_text())
        for way in ("t2v", "v2t"):
            for name in ("R@1", "R@5", "R@10", "MdR", "MnR"):
                assert cell_value(row[f"{way} {name}"]) == pytest.approx(saved[f"test/{way}_{name}"], abs=0.051)
            recalls = [cell_value(row[f"{way} R@{k}"]) for k in (1, 5, 10)]
            assert recalls == sorted(recalls) and recalls[2] == 100.0  # 8 test videos: every rank is within 10
            assert 1 <= cell_value(row[f"{way} MdR"]) <= 8 and 1 <= cell_value(row[f"{way} MnR"]) <= 8
        assert cell_value(row["R@1 gain vs full"]) == pytest.approx(cell_value(row["t2v R@1"]) - full, abs=0.051)
    assert [cell_value(r["trainable %"]) for r in results[:2]] == [0.0, 100.0]
    assert 0 < cell_value(results[2]["trainable %"]) < 100 and cell_value(results[3]["trainable %"]) == 100.0
    assert 0 < cell_value(results[4]["trainable %"]) < 1
    probe = markdown_table(proc.stdout.split("direction probe")[1], "method")
    assert [r["method"] for r in probe] == methods
    for row in probe:
        saved = json.loads((out / "stage2" / row["method"] / "seed0" / "metrics.json").read_text())
        assert cell_value(row["direction t2v %"]) == pytest.approx(saved["probe/t2v_direction_acc"], abs=0.051)
        assert cell_value(row["static v2t %"]) == pytest.approx(saved["probe/v2t_static_acc"], abs=0.051)


RERANK_ROW = re.compile(r"\| (?P<k>\d+|all \d+ \(exhaustive\)) \| (?P<two>\S+) \| (?P<all>\S+) \| (?P<kept>\S+) \| "
                        r"(?P<ms>\S+) \| (?P<speed>\S+)x \|")


def test_bench_rerank_table():
    """scripts/bench_rerank.py at its smallest: one row per K and the exhaustive row, figures in range;
    a shortlist of the whole gallery is the exhaustive ranking."""
    proc = main_in_process("scripts/bench_rerank.py", "--videos", "48", "--frames", "3", "--dim", "16",
                           "--queries", "12", "--ks", "3", "20", "48")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("two-stage search vs exhaustive: 48 videos x 3 frames x 16") and "12 queries" in lines[0]
    assert lines[1].startswith("| K | recall@10 two-stage | recall@10 exhaustive | top-10 kept | ms/query |")
    rows = [RERANK_ROW.fullmatch(line) for line in lines[3:]]
    assert all(rows) and [r["k"] for r in rows] == ["3", "20", "48", "all 48 (exhaustive)"]
    exhaustive = number(rows[-1]["two"])
    assert all(number(r["all"]) == exhaustive for r in rows)  # the same exhaustive figure beside each K
    assert all(0 <= number(r[key]) <= 100 for r in rows for key in ("two", "kept"))
    assert all(number(r["ms"]) > 0 and number(r["speed"]) > 0 for r in rows)
    assert number(rows[2]["kept"]) == number(rows[3]["kept"]) == 100 and number(rows[2]["two"]) == exhaustive
    assert number(rows[0]["kept"]) <= number(rows[1]["kept"])  # K=3 shortlists 10 (the top-k): a subset of K=20's


BUILD_ROW = re.compile(r"\| (?P<name>decode only|encode only|build) \(.*\) \| (?P<videos>\d+) \| (?P<seconds>\S+) \| (?P<rate>\S+) \|")


def test_bench_build_table(tmp_path, capsys):
    """scripts/bench_build.py at its smallest (its config, composed as its main does): the three measures
    and the two ratios, each figure consistent with the others; chunks of 4 videos in batches of 3."""
    data = [o for o in SMALL_SYNTHETIC if not o.startswith(("data.splits.num_train", "data.num_workers"))]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("bench_build", [f"paths.data_dir={tmp_path}", "model=clip_tiny", *SMALL_MODEL, *data,
                                      "data.splits.num_train=1", "data.num_workers=1", "bench_build.videos=12",
                                      "bench_build.batch_size=3", "bench_build.chunk_videos=4",
                                      "bench_build.cached_batches=2", "bench_build.rounds=1"])
    figures = bench_build.run_bench(cfg)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gallery build speed: model=clip_tiny method=zeroshot on cpu")
    assert lines[1].startswith("12 videos of data=synthetic split 'test' x 4 frames") and "batch 3, 1 workers, " \
        "chunk_videos 4, median of 1 rounds; load average before " in lines[1]
    assert lines[3] == "| measure | videos | seconds | videos/s |"
    rows = {m["name"]: m for m in map(BUILD_ROW.fullmatch, lines[5:8]) if m}
    assert list(rows) == ["decode only", "encode only", "build"]
    rate = {}
    for name, row in rows.items():
        videos, seconds = int(row["videos"]), number(row["seconds"])
        assert videos == 12 and figures[name] == (videos, pytest.approx(seconds, abs=0.005))  # 4 batches of 3
        rate[name] = number(row["rate"])
        assert rate[name] > 0 and rate[name] == pytest.approx(videos / figures[name][1], rel=0.01)  # its own timing
    ratios = dict(re.fullmatch(r"build / (\S+).*: (\S+)", line).groups() for line in lines[9:11])
    assert number(ratios["min(decode,"]) == pytest.approx(rate["build"] / min(rate["decode only"], rate["encode only"]),
                                                          rel=0.02)
    serial = 1 / (1 / rate["decode only"] + 1 / rate["encode only"])
    assert number(ratios["serial"]) == pytest.approx(rate["build"] / serial, rel=0.02)
    assert number(ratios["serial"]) > number(ratios["min(decode,"]) > 0
