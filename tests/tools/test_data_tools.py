"""The data scripts: dataset_stats.py (no videos needed), check_videos.py, prepare_data.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import ACTIVITYNET_SUBSET
from tests.helpers import CONFIG_DIR, REPO_ROOT
from vop.data.manifest import read_manifest
from vop.data.sample_videos import frame_level, write_video
from vop.tools.check_videos import check_dataset
from vop.tools.dataset_stats import dataset_stats
from vop.tools.prepare_data import prepare
from vop.tools.selected_splits import load_selected_splits



def run_script(name: str, *overrides: str, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / name), *overrides], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # logs go to stderr: stdout is pure JSON


def tools_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="tools", overrides=list(overrides))


def test_dataset_stats_activitynet_without_videos(tmp_path: Path, real_annotations: Path) -> None:
    root = tmp_path / "activitynet"
    root.mkdir()
    (root / "annotations").symlink_to(real_annotations / "activitynet")
    out = run_script("dataset_stats.py", "data=activitynet", f"data.root={root}", cwd=tmp_path)
    val, train = out["splits"]["val_1"], out["splits"]["train"]
    n = ACTIVITYNET_SUBSET  # the shipped jsons: the real files' first 100 videos
    assert (val["annotated_videos"], val["queries"], val["present_videos"], val["missing_videos"]) == (n, n, 0, n)
    assert train["annotated_videos"] == n and train["captions_per_video"] == {"min": 1, "mean": 1.0, "max": 1}
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.glob("*.log"))  # no run dir, no log file


def test_dataset_stats_msrvtt(msrvtt_root: Path) -> None:
    for name, train_videos in (("msrvtt9k", 9000), ("msrvtt7k", 7010)):  # what the script prints, in this interpreter
        out = dataset_stats(load_selected_splits(tools_cfg(f"data={name}", f"data.root={msrvtt_root}")))
        assert out["train"]["annotated_videos"] == train_videos and out["train"]["missing_videos"] == train_videos
        assert out["test"]["annotated_videos"] == 1000 and out["test"]["queries"] == 1000


@pytest.fixture
def didemo_with_videos(tmp_path: Path) -> Path:
    root = tmp_path / "didemo"
    (root / "annotations").mkdir(parents=True)
    entries = [{"video": f"{v}.mov", "description": f"moment of {v}", "times": [[0, 1]]} for v in "abc"]
    for split in ("train", "val", "test"):
        (root / "annotations" / f"{split}_data.json").write_text(json.dumps(entries))
    write_video(root / "videos" / "a.mov", 50, 96, 64, fps=25, gop=25)
    (root / "videos" / "b.mov").write_bytes(b"")  # zero bytes; c.mov is missing
    return root


def test_dataset_stats_counts_present_files(didemo_with_videos: Path, tmp_path: Path) -> None:
    out = run_script("dataset_stats.py", "data=didemo", f"data.root={didemo_with_videos}", cwd=tmp_path)
    assert out["splits"]["test"]["present_videos"] == 2 and out["splits"]["test"]["missing_videos"] == 1


def test_check_videos_writes_the_manifest(didemo_with_videos: Path) -> None:
    cfg = tools_cfg("data=didemo", f"data.root={didemo_with_videos}", "workers=1")
    assert check_dataset(cfg) == {"ok": 1, "error": 1, "missing": 1}
    manifest = read_manifest(didemo_with_videos / "manifest.jsonl")
    a = manifest[str(didemo_with_videos / "videos" / "a.mov")]
    assert (a["status"], a["frames"], a["fps"], a["duration"]) == ("ok", 50, 25.0, 2.0)
    assert manifest[str(didemo_with_videos / "videos" / "b.mov")]["error"] == "file is empty (0 bytes)"


def test_prepare_lays_out_and_reencodes_resumably(tmp_path: Path, didemo_with_videos: Path) -> None:
    fresh = tmp_path / "fresh"
    with pytest.raises(Exception, match="train_data.json"):  # folders made, then the missing file named
        prepare(tools_cfg("data=didemo", f"data.root={fresh}"))
    assert (fresh / "annotations").is_dir() and (fresh / "videos").is_dir()

    cfg = tools_cfg("data=didemo", f"data.root={didemo_with_videos}", "prepare.reencode=true",
                    "prepare.short_side=32", "workers=1")
    report = prepare(cfg)
    assert report["reencoded"] == {"done": 1, "skipped": 0, "error": 1}  # b.mov is empty
    out = Path(cfg.prepare.out_root)
    assert out.name == "didemo_3fps_32" and (out / "annotations" / "test_data.json").is_file()
    with av.open(str(out / "videos" / "a.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert (stream.codec_context.height, stream.codec_context.width) == (32, 48)
    assert len(frames) == 6  # 2 s at 3 fps
    # Output frame k shows the source frame on screen at k / 3 s, i.e. source frame floor(25 k / 3).
    for k, frame in enumerate(frames):
        assert abs(frame[:4, :4].mean() - frame_level(25 * k // 3)) <= 3
    assert prepare(cfg)["reencoded"]["skipped"] == 1  # resumable: finished files are kept
