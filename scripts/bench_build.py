"""Gallery build speed: `python scripts/bench_build.py [model=clip_tiny] [bench_build.videos=100 ...]`.

Prints the build's videos/s beside the decode-only and encode-only ceilings, measured side by side in
one run, and the ratio build / min(decode, encode) (configs/bench_build.yaml; vop/tools/bench_build.py).
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.bench_build import run_bench  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_build")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    run_bench(cfg)


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("bench_build", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
