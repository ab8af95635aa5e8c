"""scripts/gpu_check.sh's helper: the carried wheels survive packing, the results merge into one JSON;
the whole `--dry-run` (slow) passes on the CPU."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import zipfile

import pytest

from tests.helpers import REPO_ROOT

spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_packed_wheels_unpack_to_the_same_files_stored_uncompressed(tmp_path):
    wheels = tmp_path / "in"
    wheels.mkdir()
    files = {"pkg/__init__.py": b"x = 1\n" * 100, "pkg-1.0.dist-info/RECORD": b"pkg/__init__.py,,\n"}
    with zipfile.ZipFile(wheels / "pkg-1.0-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    gpu_check.pack(str(wheels), str(tmp_path / "w.tar.xz"))
    gpu_check.unpack(str(tmp_path / "w.tar.xz"), str(tmp_path / "out"))
    with zipfile.ZipFile(tmp_path / "out" / "pkg-1.0-py3-none-any.whl") as z:
        assert {i.filename: z.read(i) for i in z.infolist()} == files
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}  # xz compresses the libraries


def test_summary_merges_environment_tests_and_benchmark(tmp_path):
    (tmp_path / "env.json").write_text(json.dumps({"gpu": "NVIDIA H200", "torch": "2.11.0"}))
    (tmp_path / "bench.json").write_text(json.dumps({"train": {"bias": {}}}))
    (tmp_path / "stages.json").write_text(json.dumps({"bench": {"rc": 0, "seconds": 9}}))
    (tmp_path / "gpu_tests.xml").write_text(
        '<testsuites><testsuite tests="2" failures="1" errors="0" skipped="0">'
        '<testcase classname="tests.test_gpu_training" name="test_a"><properties>'
        '<property name="peak_gib" value="1.5"/></properties></testcase>'
        '<testcase classname="tests.test_gpu_path" name="test_b"><failure message="boom"/></testcase>'
        '</testsuite></testsuites>')
    gpu_check.summary(str(tmp_path))
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    assert out["gpu"] == "NVIDIA H200" and out["benchmark"] == {"train": {"bias": {}}}
    cases = out["pytest_gpu"]["cases"]
    assert cases["test_gpu_training::test_a"] == {"outcome": "passed", "peak_gib": "1.5"}
    assert cases["test_gpu_path::test_b"]["outcome"] == "failure: boom" and out["pytest_gpu"]["failures"] == 1
    assert out["stages"]["bench"]["rc"] == 0


@pytest.mark.slow
def test_dry_run_passes_on_the_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "VOP_GPU_CHECK_DIR": str(tmp_path / "work")}
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["pytest_gpu"]["ran"] and result["benchmark"]["loader"]
