"""Trainable parameters of every method config: `python scripts/param_table.py model=clip_b32 [format=json]`.

The model is built from `model.arch` (no download) on PyTorch's meta device: shapes only, no
memory and no initialisation, since the counts do not depend on the weights.
"""
import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.engine.assembly import build_clip  # noqa: E402
from vop.config.files import method_configs  # noqa: E402
from vop.tools.param_table import table, to_markdown, to_records  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@hydra.main(version_base="1.3", config_path="../configs", config_name="param_table")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    if cfg.format not in ("markdown", "json"):
        raise ValueError(f"format={cfg.format!r}: expected markdown or json")
    def build():
        with torch.device("meta"):
            return build_clip(cfg, random_init=True)

    rows = table(build, method_configs(CONFIGS / "method"))
    print(json.dumps(to_records(rows), indent=2) if cfg.format == "json" else to_markdown(rows, cfg.model.name))


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("param_table", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
