"""Where pretrained CLIP weights come from: a local folder, the Hugging Face cache, or the hub.

Decided before transformers is asked, so that a machine without the weights and without network
fails in seconds with one message naming both fixes, instead of the hub client retrying (five
times, about a minute and a half, each warning printed twice) before a wrapped error.
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from vop.errors import UserError


class WeightsNotFoundError(UserError, FileNotFoundError):
    """Pretrained CLIP weights could not be loaded (offline, wrong id or missing folder)."""


def looks_like_path(name_or_path: str) -> bool:
    """A hub id is `name` or `org/name`; anything else is meant as a local path."""
    return name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1


def fixes(name_or_path: str) -> str:
    return (f"Either download them once: `hf download {name_or_path}` (on a machine with internet; then copy "
            "~/.cache/huggingface/hub and set HF_HUB_OFFLINE=1), or point model.net.name_or_path=<folder> at a "
            "local folder holding config.json and model.safetensors (an OpenAI ViT-B-32.pt converts into one: "
            "docs/released.md)")


def hub_reachable(timeout: float = 5.0) -> bool:
    """One HEAD request to the hub's endpoint, no retries."""
    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
        return True
    except OSError:  # URLError, timeouts, refused connections; an HTTP error status still means reachable
        return False


def weights_source(name_or_path: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, local_files_only); WeightsNotFoundError when there is none."""
    from huggingface_hub import constants, try_to_load_from_cache

    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local), True
    if local.exists() or looks_like_path(name_or_path):
        raise WeightsNotFoundError(f"model.net.name_or_path={name_or_path}: no such folder. {fixes(name_or_path)}")
    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        return name_or_path, True  # cached: load without asking the hub for updates
    offline = constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if offline or not hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else f"{constants.ENDPOINT} cannot be reached"
        raise WeightsNotFoundError(f"CLIP weights {name_or_path} are not in the local Hugging Face cache and {why}. "
                                   f"{fixes(name_or_path)}")
    return name_or_path, False
