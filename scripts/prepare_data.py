"""Prepare a dataset: `python scripts/prepare_data.py data=<name> data.root=... [prepare.reencode=true]`.

Creates `<root>/annotations` and `<root>/videos`, checks the annotation files (a missing or
malformed one fails naming it and where to get it) and prints the counts; with
`prepare.reencode=true` also writes a 3 fps, short-side-224 copy of every present video under
`prepare.out_root` (resumable; see docs/datasets.md "Data preparation").
"""
import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.prepare_data import prepare  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="tools")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    print(json.dumps(prepare(cfg), indent=2))


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("tools", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
