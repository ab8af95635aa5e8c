"""Files from someone else are data: a checkpoint's or a gallery's stored config never chooses the
code that runs (crafted configs naming file-writing callables write nothing), and a safetensors
header is checked against the file before any tensor is read (a hostile header costs no memory)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import save_file

from tests.helpers import REPO_ROOT, assert_one_block, cli, compose_cfg
from vop.config.check import check_config
from vop.config.stored import RENAMED_KEYS, RENAMED_TARGETS, StoredConfigError, stored_config
from vop.engine.checkpoint_config import merge_checkpoint_config
from vop.engine.checkpoint import FORMAT, CheckpointError, read_checkpoint
from vop.errors import InputError
from vop.retrieval.gallery import FORMAT as GALLERY_FORMAT
from vop.retrieval.gallery import Gallery
from vop.retrieval.pipeline import RetrievalPipeline


@pytest.fixture()
def stored(tmp_path) -> dict:
    """What a bias run on the tiny model stores: its resolved config."""
    return OmegaConf.to_container(compose_cfg("eval", ["method=bias", "model=clip_tiny", "data=synthetic"], tmp_path),
                                  resolve=True)


def write_checkpoint(path, config: dict, tensors=None) -> None:
    tensors = tensors if tensors is not None else {"clip.text_projection.bias": torch.zeros(4)}
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": json.dumps(config)})


# Callables that write a file when instantiated with these arguments.
def writers(target):
    return [
        {"_target_": "numpy.savetxt", "fname": str(target), "X": [1.0]},
        {"_target_": "builtins.open", "file": str(target), "mode": "w"},
        {"_target_": "shutil.copyfile", "src": __file__, "dst": str(target)},
    ]


@pytest.mark.parametrize("where", ["method.tuner", "model.net", "decoder", "data.splits", "method.tuner.layernorm",
                                   "trainer.checkpoint"])
@pytest.mark.parametrize("writer", range(3))
def test_a_stored_target_that_writes_a_file_is_refused_and_writes_nothing(stored, tmp_path, where, writer):
    target = tmp_path / "written.txt"
    *parents, leaf = where.split(".")
    node = stored
    for p in parents:
        node = node[p]
    node[leaf] = {**node[leaf], **writers(target)[writer]} if isinstance(node.get(leaf), dict) else writers(target)[writer]
    ckpt = tmp_path / "evil.safetensors"
    write_checkpoint(ckpt, stored)
    with pytest.raises(StoredConfigError) as err:
        read_checkpoint(ckpt)
    message = str(err.value)
    assert f"checkpoint {ckpt}" in message and "_target_" in message and where.split(".")[0] in message
    assert not target.exists()


def test_eval_of_a_crafted_checkpoint_is_one_block_and_writes_nothing(stored, tmp_path):
    target = tmp_path / "written.txt"
    stored["method"]["tuner"] = writers(target)[0]
    write_checkpoint(tmp_path / "evil.safetensors", stored)
    proc = cli("eval.py", f"ckpt={tmp_path / 'evil.safetensors'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_block(proc, f"checkpoint {tmp_path / 'evil.safetensors'}: method.tuner._target_=numpy.savetxt is not allowed")
    assert not target.exists()


def test_a_crafted_gallery_config_is_refused_before_any_query(stored, tmp_path):
    target = tmp_path / "emptied.txt"
    target.write_text("the user's file")
    config = {g: stored[g] for g in ("model", "method", "data", "decoder", "trainer")}
    config["model"]["tokenizer"] = writers(target)[1]
    emb = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    path = Gallery(emb, torch.zeros(0, 8), ["a", "b"], ["a.mp4", "b.mp4"], [], [], {"model": "clip_tiny"}, config) \
        .save(tmp_path / "g.safetensors")
    with pytest.raises(StoredConfigError, match=rf"gallery {path}: model.tokenizer._target_=builtins.open"):
        RetrievalPipeline.from_gallery(path)
    assert target.read_text() == "the user's file"


@pytest.mark.parametrize("change, needle", [
    (lambda c: c["method"].update(name="bais", tuner={"_target_": "os.remove", "path": "x"}),
     "method.name='bais' is not a method option of this project"),
    (lambda c: c["method"].update(name="bais", tuner={"layernorm": True}), "method.name='bais' is not a method option"),
    (lambda c: c["data"].update(root="${oc.env:HOME}"), "data.root='${oc.env:HOME}' is not allowed: a stored config "
                                                         "holds values, not interpolations"),
    (lambda c: c["method"]["tuner"].update(layernrm=True), "method.tuner.layernrm is not a key of "
                                                            "vop.methods.bias.BiasTuning; did you mean method.tuner.layernorm?"),
    (lambda c: c["trainer"].update(epochs=-3), "trainer.epochs=-3 is not allowed: expected an integer >= 1"),
    (lambda c: c.pop("model"), "the stored config has no model group"),
])
def test_stored_values_are_checked_like_command_line_values(stored, change, needle):
    change(stored)
    with pytest.raises(StoredConfigError) as err:
        stored_config(stored, "checkpoint x.safetensors")
    assert str(err.value).startswith("checkpoint x.safetensors: ") and needle in str(err.value), str(err.value)


def test_a_genuine_stored_config_comes_back_from_the_project_groups(stored):
    cfg = stored_config(stored, "checkpoint x.safetensors")
    assert cfg.method.tuner._target_ == "vop.methods.bias.BiasTuning" and cfg.model.name == "clip_tiny"
    assert set(cfg) == {"model", "method", "data", "decoder", "trainer"}  # nothing else is read


def test_a_run_named_by_the_user_keeps_its_label_and_the_projects_code(stored):
    # `method.name=my_bias` (or the synthetic benchmark's vop_f+t) names a run, not code.
    stored["method"]["name"] = "my_bias"
    stored["method"]["tuner"]["layernorm"] = False
    cfg = stored_config(stored, "checkpoint x.safetensors")
    assert cfg.method.name == "my_bias" and cfg.method.tuner._target_ == "vop.methods.bias.BiasTuning"
    assert cfg.method.tuner.layernorm is False


def test_a_file_written_before_a_key_was_added_takes_todays_default_for_it(stored, tmp_path):
    """Runs and galleries written before `trainer.postprocess` existed (and any key added later) load:
    the key takes its default from configs/trainer/default.yaml, the file's own values stay."""
    for key in ("postprocess", "bank_captions"):
        del stored["trainer"][key]
    stored["trainer"]["eval_chunk_size"] = 17
    cfg = stored_config(stored, "checkpoint x.safetensors")
    assert list(cfg.trainer.postprocess) == [] and cfg.trainer.bank_captions == 5000
    assert cfg.trainer.eval_chunk_size == 17
    write_checkpoint(tmp_path / "old.safetensors", stored)
    assert list(read_checkpoint(tmp_path / "old.safetensors", tensors=False)[1].trainer.postprocess) == []


def older_layout(config: dict) -> dict:
    """`config` as checkpoints and galleries written before the renames of vop/config/stored.py hold it."""
    tuner = config["method"]["tuner"]
    for old, new in RENAMED_KEYS.items():
        if new in tuner:
            tuner[old.rsplit(".", 1)[-1]] = tuner.pop(new)
    former = {new: old for old, new in RENAMED_TARGETS.items()}
    tuner["_target_"] = former.get(tuner["_target_"], tuner["_target_"])
    return config


@pytest.mark.parametrize("method, target", [("vop_f", "vop.methods.vop.VoP"),
                                            ("zeroshot", "vop.methods.zeroshot.ZeroShot")])
def test_a_checkpoint_from_an_older_layout_loads_under_todays_names(tmp_path, method, target):
    cfg = compose_cfg("eval", [f"method={method}", "model=clip_tiny", "data=synthetic"], tmp_path)
    old = older_layout(OmegaConf.to_container(cfg, resolve=True))
    assert old["method"]["tuner"]["_target_"] == target and "inter_from" not in old["method"]["tuner"]
    write_checkpoint(tmp_path / "old.safetensors", old)
    _, saved = read_checkpoint(tmp_path / "old.safetensors")
    assert saved.method.tuner == cfg.method.tuner  # today's names, the same values
    if method == "vop_f":
        assert old["method"]["tuner"]["split"] == 0.5 and instantiate(saved.method.tuner).inter_from == 0.5
    check_config(merge_checkpoint_config(cfg, saved, [], tmp_path / "old.safetensors"))


def test_a_stored_config_with_a_key_under_its_old_and_new_name_is_refused(tmp_path):
    cfg = OmegaConf.to_container(compose_cfg("eval", ["method=vop_f", "model=clip_tiny"], tmp_path), resolve=True)
    cfg["method"]["tuner"]["split"] = 0.25
    with pytest.raises(StoredConfigError, match="method.tuner.split is the older name of method.tuner.inter_from"):
        stored_config(cfg, "checkpoint x.safetensors")


def test_a_checkpoint_without_config_or_with_int_tensors_is_refused(stored, tmp_path):
    path = tmp_path / "noconfig.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": FORMAT})
    with pytest.raises(CheckpointError, match="has no stored config"):
        read_checkpoint(path)
    write_checkpoint(path, stored, {"clip.text_projection.bias": torch.zeros(4, dtype=torch.int64)})
    with pytest.raises(CheckpointError, match="tensor 'clip.text_projection.bias' is I64"):
        read_checkpoint(path)


def hostile_file(path, header: dict, data: bytes = b"\0" * 16) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_a_header_claiming_more_than_the_file_holds_is_refused(tmp_path):
    meta = {"format": GALLERY_FORMAT, "info": json.dumps({"video_ids": ["a"], "video_paths": ["a.mp4"], "captions": [],
                                                           "encoder": {}, "config": {}})}
    huge = {"__metadata__": meta, "video_emb": {"dtype": "F32", "shape": [1, 2**40], "data_offsets": [0, 16]},
            "text_emb": {"dtype": "F32", "shape": [0, 4], "data_offsets": [16, 16]},
            "caption_video": {"dtype": "I64", "shape": [0], "data_offsets": [16, 16]}}
    hostile_file(tmp_path / "huge.safetensors", huge)
    with pytest.raises(InputError, match=r"tensor 'video_emb' claims shape \[1, 1099511627776\] of F32"):
        Gallery.load(tmp_path / "huge.safetensors")
    past_end = {"__metadata__": meta, "video_emb": {"dtype": "F32", "shape": [1, 2**30], "data_offsets": [0, 2**32]}}
    hostile_file(tmp_path / "past.safetensors", past_end)
    with pytest.raises(InputError, match="claim 4,294,967,296 bytes of data but the file holds 16"):
        Gallery.load(tmp_path / "past.safetensors")
    (tmp_path / "long.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(InputError, match="its header claims 4,611,686,018,427,387,904 bytes"):
        Gallery.load(tmp_path / "long.safetensors")


def test_a_hostile_header_costs_no_memory(tmp_path):
    # In a fresh process: the peak resident memory of refusing the file, against that of importing.
    hostile_file(tmp_path / "huge.safetensors", {"__metadata__": {"format": GALLERY_FORMAT},
                                                 "video_emb": {"dtype": "F32", "shape": [2**20, 2**12],
                                                               "data_offsets": [0, 2**34]}})
    code = ("import resource, sys\nfrom vop.retrieval.gallery import Gallery\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    Gallery.load(sys.argv[1])\nexcept Exception as err:\n    print(type(err).__name__)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "huge.safetensors")], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    kind, grown_kib = proc.stdout.split()
    assert kind == "InputError", proc.stderr
    assert int(grown_kib) < 50 * 1024  # the header claims 16 GiB; refusing it grows the process < 50 MiB


def test_a_gallery_whose_ids_rows_or_links_disagree_is_refused(tmp_path):
    emb = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    few_ids = Gallery(emb, torch.zeros(0, 8), ["a", "b"], ["a", "b"], [], [], {}, {}).save(tmp_path / "ids.safetensors")
    with pytest.raises(InputError, match=r"inconsistent: video_emb is \[3, 8\] for 2 video ids"):
        Gallery.load(few_ids)
    bad_link = Gallery(emb, emb[:1].clone(), ["a", "b", "c"], ["a", "b", "c"], ["x"], [7], {}, {}).save(tmp_path / "l.safetensors")
    with pytest.raises(InputError, match=r"caption_video must index the 3 videos; it holds 7..7"):
        Gallery.load(bad_link)
    ints = tmp_path / "ints.safetensors"
    save_file({"video_emb": torch.zeros(1, 8, dtype=torch.int32), "text_emb": torch.zeros(0, 8),
               "caption_video": torch.zeros(0, dtype=torch.long)}, str(ints), metadata={"format": GALLERY_FORMAT})
    with pytest.raises(InputError, match="tensor 'video_emb' is I32, expected F32"):
        Gallery.load(ints)
