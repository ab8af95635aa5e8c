"""A sharded gallery's manifest (vop/retrieval/gallery_shards.py): written for shard files that exist, loaded as
one gallery (caption links offset), and refused when tampered with (a shard name leaving the shards folder, a
shard of another encoder, a missing or replaced shard, counts that do not add up), naming the file. Galleries
here are made of random embeddings: no model is loaded."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.helpers import assert_one_block, command_in_process
from vop.commands.retrieve import retrieve
from vop.errors import InputError, MissingFileError
from vop.file_writes import save_tensors
from vop.retrieval.gallery import Gallery
from vop.retrieval.gallery_shards import (MANIFEST_FORMAT, load_gallery, read_manifest, shard_name, shard_rows,
                                          shards_dir, write_manifest)

ENCODER = {"model": "clip_tiny", "method": "zeroshot", "ckpt": None, "fingerprint": "0123456789abcdef"}


def random_gallery(videos: list[str], captions: dict[str, list[str]], seed: int, frames: bool = False,
                   encoder: dict = ENCODER) -> Gallery:
    g = torch.Generator().manual_seed(seed)
    links = [videos.index(v) for v, texts in captions.items() for _ in texts]
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    frame_emb = unit(len(videos), 3, 8) if frames else None
    video_emb = unit(len(videos), 8) if frame_emb is None else torch.nn.functional.normalize(frame_emb.mean(1), dim=-1)
    return Gallery(video_emb, unit(len(links), 8), list(videos), [f"/videos/{v}.mp4" for v in videos],
                   [t for texts in captions.values() for t in texts], links, dict(encoder), {"model": {}},
                   frame_emb=frame_emb, video_stats=[[i, 10 * i] for i in range(len(videos))])


def sharded(tmp: Path, frames: bool = False) -> tuple[Path, list[Gallery]]:
    """A manifest over three shards: 2, 1 and 3 videos; captions of v1 and v4 interleaved in the listing."""
    parts = [random_gallery(["v0", "v1"], {"v0": ["zero"], "v1": ["one", "uno"]}, 0, frames),
             random_gallery(["v2"], {}, 1, frames),
             random_gallery(["v3", "v4", "v5"], {"v5": ["five"], "v3": ["three"]}, 2, frames)]
    folder = shards_dir(tmp / "g.safetensors")
    paths = [p.save(folder / shard_name(k, 3)) for k, p in enumerate(parts)]
    write_manifest(tmp / "g.safetensors", paths)
    return tmp / "g.safetensors", parts


def test_shards_load_as_one_gallery_with_caption_links_offset(tmp_path):
    path, parts = sharded(tmp_path)
    gallery = load_gallery(path)
    assert gallery.video_ids == ["v0", "v1", "v2", "v3", "v4", "v5"]
    assert gallery.captions == ["zero", "one", "uno", "five", "three"]
    assert [gallery.video_ids[v] for v in gallery.caption_video] == ["v0", "v1", "v1", "v5", "v3"]
    assert torch.equal(gallery.video_emb, torch.cat([p.video_emb for p in parts]))
    assert torch.equal(gallery.text_emb, torch.cat([p.text_emb for p in parts]))
    assert gallery.video_stats == [s for p in parts for s in p.video_stats]
    assert gallery.encoder == ENCODER and gallery.source == str(path) and gallery.frame_emb is None
    manifest = read_manifest(path)
    assert (manifest.videos, manifest.captions, manifest.dim) == (6, 5, 8)
    assert [(e.file, e.videos, e.captions) for e in manifest.shards] == [
        ("shard-00000-of-00003.safetensors", 2, 3), ("shard-00001-of-00003.safetensors", 1, 0),
        ("shard-00002-of-00003.safetensors", 3, 2)]
    plain = tmp_path / "plain.safetensors"
    parts[0].save(plain)
    assert load_gallery(plain).video_ids == ["v0", "v1"]  # a plain file loads as before
    with pytest.raises(InputError, match="sharded gallery's manifest: load it with"):
        Gallery.load(path)


def test_frame_galleries_shard_too(tmp_path):
    path, parts = sharded(tmp_path, frames=True)
    gallery = load_gallery(path)
    assert torch.equal(gallery.frame_emb, torch.cat([p.frame_emb for p in parts]))
    assert read_manifest(path).format == "vop-gallery-2"


def test_shard_rows_are_contiguous_and_cover_the_listing():
    for n, total in ((16, 2), (7, 3), (5, 5), (100, 7)):
        rows = [list(shard_rows(n, k, total)) for k in range(total)]
        assert sum(rows, []) == list(range(n)) and all(rows)


def rewrite(path: Path, change) -> None:
    """Edit the manifest's info JSON in place (as someone handing over a gallery could)."""
    with safe_open(str(path), framework="pt") as f:
        info = json.loads(f.metadata()["info"])
    change(info)
    save_tensors({}, path, {"format": MANIFEST_FORMAT, "info": json.dumps(info)})


def set_file(name):
    def change(info):
        info["shards"][0]["file"] = name
    return change


@pytest.mark.parametrize("name", ["../g.safetensors", "/etc/passwd", "sub/shard.safetensors", "..", ""])
def test_a_shard_name_leaving_the_shards_folder_is_refused(tmp_path, name):
    path, _ = sharded(tmp_path)
    rewrite(path, set_file(name))
    with pytest.raises(InputError, match="is not a plain file name inside the shards folder"):
        load_gallery(path)


def test_a_symlink_out_of_the_shards_folder_is_refused(tmp_path):
    path, parts = sharded(tmp_path)
    outside = parts[0].save(tmp_path / "elsewhere.safetensors")
    link = shards_dir(path) / "link.safetensors"
    os.symlink(outside, link)
    rewrite(path, set_file("link.safetensors"))
    with pytest.raises(InputError, match=f"shard {link} leads out of"):
        load_gallery(path)


def test_a_shard_of_another_encoder_is_refused(tmp_path):
    path, _ = sharded(tmp_path)

    def change(info):
        info["encoder"]["fingerprint"] = "fedcba9876543210"
    rewrite(path, change)
    with pytest.raises(InputError, match="shard-00000-of-00003.safetensors was built with"):
        load_gallery(path)
    other = random_gallery(["w"], {}, 3, encoder={**ENCODER, "fingerprint": "fedcba9876543210"})
    shards = sorted(shards_dir(path).glob("*.safetensors")) + [other.save(shards_dir(path) / "other.safetensors")]
    with pytest.raises(InputError, match="other.safetensors was written by another encoder"):
        write_manifest(path, shards)


def test_a_missing_or_replaced_shard_is_refused(tmp_path):
    path, parts = sharded(tmp_path)
    shard = shards_dir(path) / shard_name(1, 3)
    parts[1].video_ids = ["w2"]  # as many bytes: only the header tells
    parts[1].save(shard)
    with pytest.raises(InputError, match=f"shard {shard}: its header is not the one the manifest recorded"):
        load_gallery(path)
    parts[1].captions, parts[1].caption_video, parts[1].text_emb = ["two"], [0], parts[0].text_emb[:1]
    parts[1].save(shard)  # another gallery under the listed name
    with pytest.raises(InputError, match=f"shard {shard} holds .* bytes, the manifest recorded"):
        load_gallery(path)
    shard.unlink()
    with pytest.raises(MissingFileError, match=f"shard {shard}: no such file"):
        load_gallery(path)


def test_counts_that_do_not_add_up_are_refused(tmp_path):
    path, _ = sharded(tmp_path)

    def total(info):
        info["videos"] = 7
    rewrite(path, total)
    with pytest.raises(InputError, match="its shards hold 6 videos and 5 captions, it says 7 and 5"):
        load_gallery(path)

    def entry(info):  # consistent totals, but the shard holds another count
        info["shards"][0]["videos"] += 1
        info["shards"][1]["videos"] -= 1
    rewrite(path, lambda info: (info.update(videos=6), entry(info)))
    with pytest.raises(InputError, match="shard-00000-of-00003.safetensors holds 2 videos, 3 captions of width 8; "
                                         "the manifest says 3, 3, 8"):
        load_gallery(path)


def test_a_manifest_with_tensors_or_a_bad_info_is_refused_before_any_shard(tmp_path):
    path, _ = sharded(tmp_path)
    save_tensors({"x": torch.zeros(2)}, path, {"format": MANIFEST_FORMAT, "info": "{}"})
    with pytest.raises(InputError, match="holds tensors"):
        read_manifest(path)
    save_tensors({}, path, {"format": MANIFEST_FORMAT, "info": "[not json"})
    with pytest.raises(InputError, match="`info` is not JSON"):
        load_gallery(path)


def test_a_tampered_manifest_is_one_error_block_from_the_command_line(tmp_path):
    path, _ = sharded(tmp_path)
    rewrite(path, set_file("../../x.safetensors"))
    proc = command_in_process(retrieve, "retrieve", tmp_path, "query=a red circle", f"gallery={path}")
    assert_one_block(proc, f"gallery={path}", "../../x.safetensors")
