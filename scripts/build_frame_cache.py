"""Decode every video of a dataset once into the frame cache: `python scripts/build_frame_cache.py data=msrvtt9k`.

Resumable: run it again after an interruption and it continues. See docs/speed.md.
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vop.config.command_line import check_command_line  # noqa: E402
from vop.engine.rundir import register_run_name_resolver  # noqa: E402
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.build_frame_cache import run_build  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="build_frame_cache")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    run_build(cfg)


if __name__ == "__main__":
    register_run_name_resolver()  # ${vop.run_name:...} in configs/hydra names the run folder
    exit_on_user_error(check_command_line)("build_frame_cache", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
