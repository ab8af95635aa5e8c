"""scripts/param_table.py's counts for ViT-B/32 (built on the meta device: shapes only)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, REPO_ROOT
from vop.config.files import method_configs, option_names
from vop.models.clip import CLIPVideoModel
from vop.tools.param_table import table, to_markdown


@pytest.fixture(scope="module")
def b32_rows():
    arch = OmegaConf.load(f"{CONFIG_DIR}/model/arch/vit_b32.yaml")  # clip_b32's

    def build():
        with torch.device("meta"):
            return CLIPVideoModel.from_config(**arch)

    return {r.method: r for r in table(build, method_configs(Path(CONFIG_DIR, "method")))}


def test_b32_counts(b32_rows):
    assert b32_rows["full"].trainable == b32_rows["full"].total == 151_277_313
    assert b32_rows["bias"].trainable == 171_008
    assert b32_rows["bias (layernorm=false)"].trainable == 138_240
    assert b32_rows["proj"].trainable == 655_360
    assert b32_rows["vop"].trainable == b32_rows["vop_f"].trainable == 122_880
    assert b32_rows["zeroshot"].trainable == 0
    # VoP's text suffix (12 layers x 4 x 512) reaches the output only for captions of 64+ tokens.
    assert b32_rows["vop"].effective == 122_880 - 12 * 4 * 512 == 98_304
    assert b32_rows["bias"].effective == b32_rows["bias"].trainable


def test_dgl_counts_beside_the_papers_figure(b32_rows):
    """DGL, counted from the released structure: the latent embedding (8 + 4 x 12 tokens x 12 layers x
    768), one 768-wide block, the 768 -> 1536 -> 512 text MLP and 4 global prompts; latent=linear:
    4 x 12 x 768 vectors and two 768 -> 512 maps, the paper's "0.83 MB" (its suffix map is inert)."""
    block = 4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768
    transformer = 56 * 12 * 768 + block + (768 * 1536 + 1536 + 1536 * 512 + 512) + 4 * 768
    linear = 4 * 12 * 768 + 2 * (768 * 512 + 512) + 4 * 768
    assert (b32_rows["dgl"].trainable, b32_rows["dgl"].effective) == (transformer, transformer) == (9_575_168,) * 2
    row = b32_rows["dgl (latent=linear)"]
    assert (row.trainable, row.effective) == (linear, linear - (768 * 512 + 512)) == (827_392, 433_664)
    assert round(row.trainable / 1e6, 2) == row.paper_trainable / 1e6 == 0.83
    assert "| dgl (latent=linear) | 827,392 | 433,664 |" in to_markdown(list(b32_rows.values()), "clip_b32")
    assert "| 0.67 | 0.83M |" in to_markdown([row], "clip_b32")


def test_every_method_config_has_a_row(b32_rows):
    assert set(option_names(Path(CONFIG_DIR, "method"))) <= set(b32_rows)
    assert "| vop | 122,880 | 98,304 |" in to_markdown(list(b32_rows.values()), "clip_b32")


def test_records_are_json(b32_rows):
    from vop.tools.param_table import to_records

    records = json.loads(json.dumps(to_records(list(b32_rows.values()))))
    assert {r["method"]: r["trainable"] for r in records}["proj"] == 655_360


@pytest.mark.slow  # an interpreter start-up with transformers and Hydra
def test_script_prints_json_for_the_tiny_model():
    proc = subprocess.run([sys.executable, "scripts/param_table.py", "model=clip_tiny", "format=json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["method"]: r for r in json.loads(proc.stdout)}
    assert rows["full"]["trainable"] == rows["full"]["total"] and rows["full"]["percent"] == 100.0


def test_readme_table_matches_the_counts(b32_rows):
    """The README's methods table shows these very counts (trainable and effective)."""
    import re

    readme = (REPO_ROOT / "README.md").read_text()
    rows = {m.group(1): (m.group(2), m.group(3)) for m in
            re.finditer(r"^\| `(\w+)` \| ([\d,]+) \| ([\d,]+) \|", readme, flags=re.M)}
    assert set(rows) == set(option_names(Path(CONFIG_DIR, "method")))
    for name, (trainable, effective) in rows.items():
        assert (trainable, effective) == (f"{b32_rows[name].trainable:,}", f"{b32_rows[name].effective:,}"), name
