"""Print JSON counts per split: `python scripts/dataset_stats.py data=<name> [data.root=...]`.

Works with no videos present (annotation-level counts; every video then counts as missing).
"""
import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.dataset_stats import dataset_stats  # noqa: E402
from vop.tools.selected_splits import load_selected_splits  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="tools")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    print(json.dumps({"data": cfg.data.name, "splits": dataset_stats(load_selected_splits(cfg))}, indent=2))


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("tools", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
