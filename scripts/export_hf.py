"""A trained run -> a Hugging Face CLIP folder that plain transformers code loads (docs/own_videos.md).

`python scripts/export_hf.py ckpt=outputs/train/latest out=exports/my_clip`, then
`CLIPModel.from_pretrained("exports/my_clip")`. For full, bias, proj and partial runs (their trained
tensors are CLIP's own, merged); adapters and VoP add modules and are refused.
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.tools import export_hf  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="export_hf")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    export_hf.main(cfg)


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("export_hf", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
