"""Scan every video of a dataset and write the manifest that runs then use:
`python scripts/check_videos.py data=<name> [data.root=...] [workers=8] [decoder=...]`.

Each video is opened, counted and has its first, middle and last frame decoded (in parallel,
with a progress bar); the manifest (JSON lines, default `<data.root>/manifest.jsonl`,
`data.manifest=...`) records frames, fps, duration, size, status and error.
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.check_videos import check_dataset  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="tools")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    check_dataset(cfg)


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("tools", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
