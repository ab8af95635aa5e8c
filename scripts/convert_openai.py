"""OpenAI CLIP weights -> an HF folder (config.json, model.safetensors, tokenizer files).

`python scripts/convert_openai.py src=ViT-B-32.pt dst=checkpoints/clip-vit-base-patch32 model=clip_b32`,
then `model.net.name_or_path=checkpoints/clip-vit-base-patch32`. The architecture comes from
`model.arch`; the tokenizer is OpenAI's BPE vocabulary (vop.data.tokenizer.openai_bpe_tokenizer).
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402
from vop.data.tokenizer import openai_bpe_tokenizer  # noqa: E402
from vop.engine.assembly import build_clip  # noqa: E402
from vop.models.convert import openai_to_hf, read_openai_file, strip_prefix  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="convert_openai")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    if cfg.model.get("arch") is None:
        raise ValueError(f"model={cfg.model.name} has no `arch` section to build the HF model from")
    model = build_clip(cfg, random_init=True)
    model.clip.load_state_dict(openai_to_hf(strip_prefix(read_openai_file(cfg.src))), strict=True)
    model.clip.save_pretrained(cfg.dst)
    openai_bpe_tokenizer().save_pretrained(cfg.dst)
    print(f"wrote {cfg.dst}: use model.net.name_or_path={cfg.dst}")


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("convert_openai", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
