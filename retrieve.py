"""Search videos with text and text with a video: `python retrieve.py action=build ...` / `query=...`
(see configs/retrieve.yaml)."""
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import vop  # noqa: F401  (registers the config resolvers)
from vop.retrieval.cli import retrieve


@hydra.main(version_base="1.3", config_path="configs", config_name="retrieve")
def main(cfg: DictConfig) -> None:
    retrieve(cfg, overrides=HydraConfig.get().overrides.task)


if __name__ == "__main__":
    main()
