"""Training/eval throughput per data path, side by side in one run, printed as JSON.

`python scripts/bench_throughput.py data=msrvtt9k` (configs/bench.yaml; docs/speed.md).
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vop.config.command_line import check_command_line  # noqa: E402
from vop.engine.rundir import register_run_name_resolver  # noqa: E402
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools.bench_throughput import run_bench  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    run_bench(cfg)


if __name__ == "__main__":
    register_run_name_resolver()  # ${vop.run_name:...} in configs/hydra names the run folder
    exit_on_user_error(check_command_line)("bench", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
