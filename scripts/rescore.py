"""Metrics from a saved similarity matrix: `python scripts/rescore.py sims=<run dir>/similarity.safetensors [post=dsl]`.

Prints the raw and post-processed metrics as JSON (metrics.json's names). A `.npy` from another
codebase needs `scale=1|100`; see configs/rescore.yaml and vop/tools/rescore.py.
"""
import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from vop.config.command_line import check_command_line  # noqa: E402
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.rescore import rescore, write_json  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="rescore")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    post = OmegaConf.to_object(cfg.post) if OmegaConf.is_list(cfg.post) else cfg.post
    metrics = rescore(cfg.sims, post, cfg.scale, cfg.captions, cfg.bank)
    if cfg.out:
        write_json(metrics, cfg.out)
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("rescore", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
