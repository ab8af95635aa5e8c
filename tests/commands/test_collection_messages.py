"""What the commands print about a user's collection (issue 27, "a real user's run"): an audio-only
.mp4 is "it has no video stream (only audio aac)", named, as a query (one Error: block), in a gallery
build and in training (skipped and counted) and in check_videos.py; a captions file's errors name the
file and the line, a wrong id the nearest file name; repeated rows are one WARNING; a 100,000-character
caption is shortened the same way in the warnings, the printed results and the result page.

The commands run in this interpreter on the real configs (tests/helpers.py command_in_process,
in_process): each prints what its process would."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.helpers import CONFIG_DIR, assert_one_block, command_in_process, in_process
from tests.library.data.test_custom_data import write_clip
from vop.commands.retrieve import retrieve
from vop.commands.train import train
from vop.data.manifest import read_manifest
from vop.data.sample_videos import write_audio_only
from vop.tools.check_videos import check_dataset

TINY = ["model=clip_tiny", "method=zeroshot", "trainer.device=cpu", "trainer.progress=false", "data.num_frames=4",
        "data.eval_batch_size=4", "data.num_workers=0"]
NO_VIDEO = "it has no video stream (only audio aac)"
LONG = ("a tram crosses the old bridge at dusk " * 2700)[:100_000]
SHOWN = LONG[:80] + "… (99,920 more characters)"  # vop/data/caption_preview.py


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four clips and a song saved as .mp4 (audio only); captions.csv: a 100,000-character caption,
    a repeated row, and a caption for the song."""
    root = tmp_path_factory.mktemp("user") / "clips"
    for i, name in enumerate(["beach/wave.mp4", "city/tram.mkv", "park/dog.mp4", "park/cat.mp4"]):
        write_clip(root / name, i)
    write_audio_only(root / "park" / "song.mp4")
    (root.parent / "captions.csv").write_text(
        "video,caption,split\n"
        "beach/wave,waves roll in,train\n"
        f"city/tram,{LONG},train\n"
        "park/dog,a dog runs,train\n"
        "park/cat,a cat sleeps,test\n"
        "park/song,a song,train\n"
        "beach/wave.mp4,waves roll in,train\n")  # line 7 repeats line 2
    return root


def retrieve_here(tmp: Path, *args: str):
    return command_in_process(retrieve, "retrieve", tmp, *args, *TINY)


@pytest.fixture(scope="module")
def gallery(folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    path = tmp / "g.safetensors"
    proc = retrieve_here(tmp, "action=build", f"videos={folder}", f"captions={folder.parent / 'captions.csv'}",
                         f"gallery={path}", "max_bad_fraction=0.25")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path, proc


def long_lines(text: str) -> list[str]:
    """Lines a whole caption would make (a message with a few temporary paths stays well under 1,000)."""
    return [line for line in text.splitlines() if len(line) > 1000]


def test_the_gallery_build_skips_the_song_saying_why_and_counts_the_repeated_row(gallery, folder):
    _, proc = gallery
    assert f"skipped unreadable video {folder / 'park' / 'song.mp4'}: {NO_VIDEO} (split 'folder'" in proc.stderr
    assert "skipped 1 of 5 videos that cannot be read, and their 1 captions" in proc.stderr
    assert f"{folder.parent / 'captions.csv'}: 1 row(s) repeat an earlier row (the same video, caption and split) " \
           "and are kept once: line 7 repeats line 2 ('beach/wave': \"waves roll in\")" in proc.stderr
    assert not long_lines(proc.stdout + proc.stderr)


def test_the_song_as_a_query_is_one_error_block_saying_so(gallery, folder, tmp_path):
    song = folder / "park" / "song.mp4"
    proc = retrieve_here(tmp_path, f"gallery={gallery[0]}", f"query={song}")
    assert_one_block(proc, f"query video {song} cannot be decoded: {NO_VIDEO} (a query ending in a video suffix")
    assert "split 'query'" not in proc.stderr  # the dataset's words for a split and item: none here
    cover = write_audio_only(tmp_path / "album track.mp4", cover_art=True)  # its cover art is no video either
    assert_one_block(retrieve_here(tmp_path, f"gallery={gallery[0]}", f"query={cover}"),
                     f"query video {cover} cannot be decoded: it has no video stream (only audio aac, cover art png)")


def test_a_long_caption_is_shortened_in_the_results_and_on_the_page(gallery, folder, tmp_path):
    page = tmp_path / "page.html"
    proc = retrieve_here(tmp_path, f"gallery={gallery[0]}", f"query={folder / 'city' / 'tram.mkv'}", "topk=4",
                         f"html={page}")  # video -> captions: every caption of the gallery is a hit
    assert proc.returncode == 0, proc.stderr[-3000:]
    [hit] = [line for line in proc.stdout.splitlines() if "a tram crosses" in line]
    assert hit.endswith(f"  {SHOWN}  [city/tram]")
    assert not long_lines(proc.stdout + proc.stderr)
    html = page.read_text()
    assert SHOWN in html and LONG[:200] not in html
    proc = retrieve_here(tmp_path, f"gallery={gallery[0]}", f"query={LONG}", "topk=4", f"html={page}")  # text -> videos
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == f"t2v query: {SHOWN}"
    assert f"{'':14}{json.dumps(SHOWN, ensure_ascii=False)}" in proc.stdout.splitlines()  # city/tram's first caption
    assert not long_lines(proc.stdout + proc.stderr)
    html = page.read_text()
    assert html.count(SHOWN) >= 2 and LONG[:200] not in html  # the query's heading and the hit's caption


def test_check_videos_prints_the_reason(folder, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):  # as scripts/check_videos.py composes
        cfg = compose(config_name="tools", overrides=[
            "data=custom", f"data.videos={folder}", f"data.captions={folder.parent / 'captions.csv'}",
            f"data.manifest={manifest}", "workers=1"])
    proc = in_process(lambda: check_dataset(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"unreadable: {folder / 'park' / 'song.mp4'}: {NO_VIDEO}\n" in proc.stderr
    assert "5 videos: 4 ok, 0 missing, 1 unreadable" in proc.stdout
    assert read_manifest(manifest)[str(folder / "park" / "song.mp4")]["error"] == NO_VIDEO
    assert not long_lines(proc.stdout + proc.stderr)


def test_training_skips_the_song_with_its_reason(folder, tmp_path):
    proc = command_in_process(train, "train", tmp_path, "data=custom", f"data.videos={folder}",
                              f"data.captions={folder.parent / 'captions.csv'}", *TINY, "method=full",
                              "trainer.epochs=1", "data.batch_size=2", "data.max_bad_fraction=0.5",
                              "trainer.eval_every_epoch=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"skipped bad training video {folder / 'park' / 'song.mp4'}: {NO_VIDEO} (split 'train'" in proc.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train/bad_videos"] == 1
    assert not long_lines(proc.stdout + proc.stderr)


CAPTION_ERRORS = {  # file name: (its text, what the Error: block must say)
    "multi-line.csv": ('video,caption\nbeach/wave,"a wave\nthat rolls\nin"\ncity/tram,a tram\npark/dgo,a dog\n',
                       ["multi-line.csv line 6: 'park/dgo'", "did you mean 'park/dog.mp4'?"]),
    "wrong id.json": ('{\n "beach/wave": "waves",\n "city/tarm": "a tram"\n}\n',
                      ["wrong id.json line 3: 'city/tarm'", "did you mean 'city/tram.mkv'?"]),
    "empty.json": ('{\n "beach/wave": "waves",\n "city/tram": ["a tram",\n   ""]\n}\n',
                   ["empty.json line 3, key 'city/tram': empty caption"]),
    "numbers.jsonl": (json.dumps({"video": "beach/wave", "caption": "waves"}) + "\n"
                      + json.dumps({"video": "city/tram", "caption": [LONG, 3]}) + "\n",
                      ["numbers.jsonl line 2, key 'caption': expected a caption text or a list of them, got "
                       f'["{LONG[:78]}… (99,927 more characters)']),
}


@pytest.mark.parametrize("name", sorted(CAPTION_ERRORS))
def test_a_captions_files_error_is_one_block_naming_file_and_line(folder, tmp_path, name):
    text, needles = CAPTION_ERRORS[name]
    (tmp_path / name).write_text(text)
    proc = command_in_process(train, "train", tmp_path, "data=custom", f"data.videos={folder}",
                              f"data.captions={tmp_path / name}", *TINY)
    assert_one_block(proc, *needles)
    assert not long_lines(proc.stdout + proc.stderr)


def test_a_test_video_cut_after_its_header_stops_evaluation_with_one_block(tmp_path):
    """Its header opens (the index is at the front), so the check before training passes it; its
    frames are cut off, so the evaluation's decode fails: one block naming the file, not a data
    worker's traceback."""
    from vop.commands.eval import evaluate_run
    from vop.data.sample_collection import name, write_collection

    files = write_collection(tmp_path / "my_clips")
    clip = files["videos"] / name(39)  # in the test split
    front = tmp_path / "front.mp4"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(clip), "-movflags", "+faststart", "-c", "copy",
                    str(front)], check=True)
    clip.write_bytes(front.read_bytes()[:front.stat().st_size // 2])
    proc = command_in_process(evaluate_run, "eval", tmp_path, "data=custom", f"data.videos={files['videos']}",
                              f"data.captions={files['csv']}", "model=clip_tiny", "method=full",
                              "data.num_workers=1")
    assert_one_block(proc, f"a test video cannot be decoded: '{clip}'", "An evaluation ranks every video")
