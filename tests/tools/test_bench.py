"""The throughput benchmark on the CPU: loader figures per data path, and its GPU-side measurements'
code path run on the CPU with the tiny model (figures meaningless there, structure checked)."""
import json

import torch
from hydra import compose, initialize_config_dir

from tests.helpers import CONFIG_DIR, SMALL_SYNTHETIC
from vop.engine.assembly import load_splits
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
