"""Train a tuning method: `python train.py method=bias data=msrvtt9k` (see configs/train.yaml)."""
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# Only light modules here: the command line is checked before torch and transformers load (~9 s).
from vop.config.command_line import check_command_line
from vop.engine.rundir import no_folder_if_refused, register_run_name_resolver
from vop.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    from vop.commands.train import train  # torch, transformers: once the command line composes

    run = HydraConfig.get()
    with no_folder_if_refused(run.runtime.output_dir, f"{run.job.name}.log"):  # a refused run leaves none
        train(cfg, overrides=run.overrides.task)


if __name__ == "__main__":
    register_run_name_resolver()  # ${vop.run_name:...} in configs/hydra names the run folder
    exit_on_user_error(check_command_line)("train", sys.argv[1:])  # Hydra's errors: one block, exit 2 (not 1)
    main()
