"""A sample collection laid out as your own videos would be: `python scripts/sample_collection.py
out=data/my_clips` writes `data/my_clips/` (40 small clips as mp4, mkv and avi in subfolders whose
names have spaces, one file cut off) and its captions as `data/my_clips.csv`, `.jsonl` and `.json`
(README "Your own videos", vop/data/sample_collection.py)."""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.config.command_line import check_command_line  # noqa: E402  (vop.config registers ${vop.*})
from vop.errors import exit_on_user_error  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="sample_collection")
@exit_on_user_error  # a UserError: its message and exit status 2, no traceback
def main(cfg: DictConfig) -> None:
    from vop.data.sample_collection import write_collection  # PyAV and numpy: after the command line is checked

    files = write_collection(cfg.out, cfg.num_videos, cfg.num_test)
    print(f"sample collection: {files['videos']}/ ({cfg.num_videos} clips and one cut-off file), captions "
          f"{files['csv']} (also .jsonl, .json)")


if __name__ == "__main__":
    exit_on_user_error(check_command_line)("sample_collection", sys.argv[1:])  # Hydra's errors: one block, exit 2
    main()
