"""Train a tuning method: `python train.py method=bias data=msrvtt9k` (see configs/train.yaml)."""
import hydra
from omegaconf import DictConfig

import vop  # noqa: F401  (registers the config resolvers)
from vop.engine.trainer import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
