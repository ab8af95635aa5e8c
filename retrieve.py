"""Search videos with text and text with a video: `python retrieve.py action=build ...` / `query=...`
(see configs/retrieve.yaml)."""
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# Only light modules here: the command line is checked before torch and transformers load (~9 s).
from vop.config.command_line import check_command_line, over_checkpoint, quoted_free_text
from vop.engine.rundir import register_run_name_resolver
from vop.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="configs", config_name="retrieve")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    from vop.commands.retrieve import retrieve  # torch, transformers: once the command line composes

    retrieve(cfg, overrides=HydraConfig.get().overrides.task)


if __name__ == "__main__":
    register_run_name_resolver()  # ${vop.run_name:...} in configs/hydra names the run folder
    sys.argv[1:] = over_checkpoint(sys.argv[1:])  # with ckpt=: data.<key>= goes over the trained run's data
    sys.argv[1:] = quoted_free_text(sys.argv[1:])  # query="<any text>", unicode and commas included
    exit_on_user_error(check_command_line)("retrieve", sys.argv[1:])  # Hydra's errors: one block, exit 2 (not 1)
    main()
