"""Helpers of scripts/gpu_check.sh (docs/speed.md "Verifying a GPU machine"): pack and unpack the carried
wheels, report the environment, and merge the results into one JSON.

    python scripts/gpu_check.py pack <wheel dir> <archive.tar.xz>
    python scripts/gpu_check.py unpack <archive.tar.xz> <dir>
    python scripts/gpu_check.py env                      # JSON on stdout
    python scripts/gpu_check.py summary <out dir>        # env.json + gpu_tests.xml + bench.json -> gpu_check.json
"""
from __future__ import annotations

import ctypes
import io
import json
import lzma
import os
import platform
import sys
import tarfile
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pack(src: str, archive: str) -> None:
    """Wheels -> one tar.xz. Each wheel is rewritten uncompressed (same files, same RECORD hashes) so
    xz compresses the libraries inside: ~30% smaller than the wheels, which is what makes them fit
    the 64 MiB that travels with the working tree."""
    Path(archive).parent.mkdir(parents=True, exist_ok=True)
    wheels = sorted(Path(src).glob("*.whl"))
    with tarfile.open(archive, "w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        for wheel in wheels:
            stored = io.BytesIO()
            with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zout:
                for entry in zin.infolist():
                    zout.writestr(entry, zin.read(entry), compress_type=zipfile.ZIP_STORED)
            info = tarfile.TarInfo(wheel.name)
            info.size = stored.tell()
            stored.seek(0)
            tar.addfile(info, stored)
            print(f"  {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB")
    print(f"{archive}: {len(wheels)} wheels, {Path(archive).stat().st_size / 2**20:.1f} MiB")


def unpack(archive: str, dest: str) -> None:
    Path(dest).mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    print(f"{archive} -> {dest}: {len(list(Path(dest).glob('*.whl')))} wheels")


def _version(module: str) -> str | None:
    try:
        return getattr(__import__(module), "__version__", "?")
    except Exception as err:  # missing, or fails to load its libraries
        return f"unavailable ({type(err).__name__}: {str(err)[:120]})"


def environment() -> dict:
    import torch

    from vop.data.decoders.nvdec import nvdec_missing
    from vop.data.jpeg import probe_nvjpeg

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "torchvision": _version("torchvision"),
           "PyNvVideoCodec": _version("PyNvVideoCodec"), "decord": _version("decord"), "av": _version("av"),
           "nvdec_missing": nvdec_missing()}
    try:
        ctypes.CDLL("libnvcuvid.so.1")
        env["libnvcuvid"] = "found"
    except OSError as err:
        env["libnvcuvid"] = f"not found ({err})"
    stats = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    env["dev_shm_mib"] = round(stats.f_blocks * stats.f_frsize / 2**20) if stats else None
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        env.update(gpu=torch.cuda.get_device_name(index), capability=".".join(map(str, torch.cuda.get_device_capability(index))),
                   gpu_memory_gib=round(torch.cuda.get_device_properties(index).total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported(including_emulation=False))
        probe = probe_nvjpeg(index)
        env["nvjpeg"] = {"works": probe.works, "hardware": probe.hardware, "detail": probe.detail}
    else:
        env["gpu"] = None
    return env


def tests_summary(junit: Path) -> dict:
    if not junit.is_file():
        return {"ran": False}
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    cases = {}
    for case in suite.iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = f"{tag}: {(node.get('message') or '')[:300]}"
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[name] = {"outcome": outcome, **props}
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {"ran": True, **counts, "cases": cases}


def summary(out: str) -> None:
    out = Path(out)
    read = lambda name: json.loads((out / name).read_text()) if (out / name).is_file() else None  # noqa: E731
    env, bench = read("env.json"), read("bench.json")
    result = {"gpu": (env or {}).get("gpu"), "environment": env, "pytest_gpu": tests_summary(out / "gpu_tests.xml"),
              "benchmark": bench, "stages": read("stages.json")}
    path = out / "gpu_check.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    tests = result["pytest_gpu"]
    print(f"GPU {result['gpu']}: pytest -m gpu {tests.get('tests', 0)} tests, {tests.get('failures', 0)} failed, "
          f"{tests.get('errors', 0)} errors, {tests.get('skipped', 0)} skipped; benchmark "
          f"{'written' if bench else 'missing'}; -> {path}")


def print_environment() -> None:
    print(json.dumps(environment(), indent=2))


VERBS = {"pack": pack, "unpack": unpack, "env": print_environment, "summary": summary}

if __name__ == "__main__":
    verb, *args = sys.argv[1:] or ["help"]
    if verb in ("help", "-h", "--help"):
        print(__doc__)
    elif verb not in VERBS:
        print(f"Error: {verb!r} is not a verb of scripts/gpu_check.py\n(usage: gpu_check.py {{{','.join(VERBS)}}} ...; "
              "`help` explains them)", file=sys.stderr)
        sys.exit(2)
    else:
        VERBS[verb](*args)
