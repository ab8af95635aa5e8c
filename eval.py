"""Evaluate: `python eval.py method=zeroshot data=msrvtt9k` or `python eval.py ckpt=<run dir>`."""
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import vop  # noqa: F401  (registers the config resolvers)
from vop.commands.eval import evaluate_run
from vop.config.choices import check_choices
from vop.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    evaluate_run(cfg, overrides=HydraConfig.get().overrides.task)


if __name__ == "__main__":
    exit_on_user_error(check_choices)(sys.argv[1:])  # method=bais: one block, exit 2 (not Hydra's 1)
    main()
