"""Evaluate: `python eval.py method=zeroshot data=msrvtt9k` or `python eval.py ckpt=<run dir>`."""
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# Only light modules here: the command line is checked before torch and transformers load (~9 s).
from vop.config.command_line import check_command_line, over_checkpoint
from vop.engine.rundir import no_folder_if_refused, register_run_name_resolver
from vop.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    from vop.commands.eval import evaluate_run  # torch, transformers: once the command line composes

    run = HydraConfig.get()
    with no_folder_if_refused(run.runtime.output_dir, f"{run.job.name}.log"):  # a refused run leaves none
        evaluate_run(cfg, overrides=run.overrides.task)


if __name__ == "__main__":
    register_run_name_resolver()  # ${vop.run_name:...} in configs/hydra names the run folder
    sys.argv[1:] = over_checkpoint(sys.argv[1:])  # with ckpt=: data.<key>= goes over the trained run's data
    exit_on_user_error(check_command_line)("eval", sys.argv[1:])  # Hydra's errors: one block, exit 2 (not 1)
    main()
