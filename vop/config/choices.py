"""Group choices on the command line (`method=bias`) checked before Hydra composes.

Hydra reports an unknown option (`method=bais`) itself, with its own text and exit status 1;
checked here first, it is one `Error:` block with the options of that group and the nearest one,
exit status 2, like every other user error. A multirun list (`method=bias,full`) is checked
option by option; anything that is not `group=option` for a folder of configs/ is left to Hydra.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

import vop
from vop.config.files import option_names
from vop.errors import ConfigError

CONFIG_DIR = Path(vop.ROOT) / "configs"
# Groups whose options are chosen: an option file of the project supplies every `_target_`; a trained
# run's checkpoint brings its own choice of each (vop/config/stored.py, vop/engine/checkpoint_config.py).
CHOSEN_GROUPS = ("model", "method", "data", "decoder")


def override_key(override: str) -> str:
    """`+data.num_frames=8` -> `data.num_frames` (also `++` and `~`)."""
    return override.lstrip("+~").split("=")[0]


def check_choices(argv: Sequence[str], config_dir: Path = CONFIG_DIR) -> None:
    """Raise ConfigError for the first `group=option` whose option is not a file of configs/<group>/."""
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if not sep or arg.startswith(("~", "hydra")) or "." in key or not (config_dir / key).is_dir():
            continue
        options = option_names(config_dir / key)
        for option in value.split(","):
            if option and option != "null" and option not in options:
                near = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
                hint = f"; did you mean {key}={near[0]}?" if near else ""
                raise ConfigError(f"{key}={option} is not an option of the {key} group (configs/{key}/: "
                                  f"{', '.join(options)}){hint}")
