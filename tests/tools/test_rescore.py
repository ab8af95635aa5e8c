"""The similarity matrix a run saves, rescored: the run's metrics exactly (raw and post-processed); a
.npy from another codebase scored the same way; a file that is not what it claims refused by name."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import cli, compose_cfg, tiny_synthetic
from vop.commands.eval import evaluate_run
from vop.commands.train import train
from vop.errors import ConfigError, InputError
from vop.metrics.similarity_file import FILENAME, read_similarity
from vop.tools.rescore import rescore

POST = ["dsl", "dsl_bank", "qbnorm"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rescore")
    cfg = tiny_synthetic("bias", tmp, ["method.lr=1e-3", f"trainer.postprocess=[{','.join(POST)}]",
                                       "trainer.bank_captions=20"])
    train(cfg)
    return Path(cfg.paths.output_dir)


def saved_metrics(run: Path) -> dict:
    return {k: v for k, v in json.loads((run / "metrics.json").read_text()).items()
            if k.startswith("test/") and ("t2v_" in k or "v2t_" in k)}


def test_rescoring_a_runs_matrix_gives_its_metrics_exactly(trained):
    saved = saved_metrics(trained)
    assert "test/t2v_R@1" in saved and "test/dsl/v2t_MnR" in saved and "test/qbnorm/t2v_R@1" in saved
    assert "test/qbnorm/v2t_R@1" not in saved  # no bank of training videos: no video->text QB-Norm
    assert rescore(trained / FILENAME, POST) == saved  # every raw and post-processed number, bit for bit
    loaded = read_similarity(trained / FILENAME)
    assert loaded.scores.shape == (16, 16) and loaded.bank.shape == (20, 16) and len(loaded.videos) == 16
    proc = cli("scripts/rescore.py", f"sims={trained / FILENAME}", "post=dsl")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == {k: v for k, v in saved.items() if k.count("/") == 1 or k.startswith("test/dsl/")}


def test_eval_saves_the_matrix_it_scored(trained, tmp_path):
    cfg = compose_cfg("eval", [f"ckpt={trained}", "trainer.postprocess=[dsl]"], tmp_path)
    metrics = evaluate_run(cfg, overrides=[f"ckpt={trained}"])
    run = tmp_path / "run"
    assert rescore(run / FILENAME, ["dsl"]) == saved_metrics(run) == {k: v for k, v in metrics.items() if "_" in k}
    assert read_similarity(run / FILENAME).bank is None  # dsl needs no bank, so none was encoded


def test_a_npy_dump_from_another_codebase(trained, tmp_path):
    """Logit-scaled scores (x100, as CLIP4Clip and DGL keep them), captions shuffled with a mapping file."""
    loaded = read_similarity(trained / FILENAME)
    order = torch.randperm(loaded.scores.shape[0], generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "sims.npy", 100.0 * loaded.scores[order].double().numpy())
    (tmp_path / "map.txt").write_text("\n".join(str(v) for v in loaded.text_video[order].tolist()) + "\n")
    np.save(tmp_path / "bank.npy", 100.0 * loaded.bank.double().numpy())
    got = rescore(tmp_path / "sims.npy", POST, scale=100, captions=tmp_path / "map.txt", bank=tmp_path / "bank.npy")
    want = saved_metrics(trained)
    assert {k: v for k, v in got.items() if k.count("/") == 1} == {k: v for k, v in want.items() if k.count("/") == 1}
    assert got == pytest.approx(want)
    np.save(tmp_path / "in_order.npy", 100.0 * loaded.scores.double().numpy())  # caption i describes video i
    assert rescore(tmp_path / "in_order.npy", scale=100)["test/t2v_MnR"] == want["test/t2v_MnR"]
    with pytest.raises(ConfigError, match="scale="):
        rescore(tmp_path / "sims.npy")


def test_files_that_are_not_a_similarity_matrix_are_refused(trained, tmp_path):
    save_file({"scores": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InputError, match="not a vop similarity matrix"):
        rescore(tmp_path / "other.safetensors")
    with pytest.raises(InputError, match="not a vop similarity matrix"):
        rescore(trained / "checkpoint.safetensors")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a plain numeric"):
        rescore(tmp_path / "objects.npy", scale=1)
    np.save(tmp_path / "wide.npy", np.zeros((2, 3)))
    with pytest.raises(InputError, match="must be square"):
        rescore(tmp_path / "wide.npy", scale=1)
    (tmp_path / "map.txt").write_text("0\n5\n")
    with pytest.raises(InputError, match=r"in \[0, 3\)"):
        rescore(tmp_path / "wide.npy", scale=1, captions=tmp_path / "map.txt")
    with pytest.raises(ConfigError, match="only apply to a .npy"):
        rescore(trained / FILENAME, scale=100)


@pytest.mark.parametrize("post,bank,needle", [("[sinkhorn]", 20, "unknown post-processing"),
                                              ("[dsl,qbnorm]", 0, "need a bank of training captions")])
def test_post_processing_settings_are_checked_before_evaluating(post, bank, needle, tmp_path):
    cfg = tiny_synthetic("zeroshot", tmp_path, [f"trainer.postprocess={post}", f"trainer.bank_captions={bank}"],
                         config_name="eval")
    with pytest.raises(ConfigError, match=needle):
        evaluate_run(cfg)
    assert not (tmp_path / "run" / "metrics.json").exists()
