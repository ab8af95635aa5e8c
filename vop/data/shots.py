"""Shots of a video, found by PySceneDetect (the optional extra `shots`: pip install 'vop[shots]'):
a moment gallery with `moments.split=shots` makes each shot a row instead of fixed windows.

PySceneDetect's ContentDetector marks a cut where consecutive frames differ by more than
`threshold` in HSV content (its default, 27, suits most footage); the shots are the frame ranges
between cuts, covering the whole video. It decodes the whole video once, with PyAV.
"""
from __future__ import annotations

from pathlib import Path

from vop.errors import InputError

INSTALL = "pip install 'vop[shots]' (PySceneDetect)"


def require_scenedetect() -> None:
    """InputError saying how to install PySceneDetect where it is missing (before a build loads its model)."""
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        raise InputError(f"moments.split=shots finds shots with PySceneDetect, which is not installed: {INSTALL}") \
            from None


def shot_frames(path: str | Path, threshold: float = 27.0) -> list[tuple[int, int]]:
    """[first, stop) frames of each shot of the video at `path`, in order; one shot for a video without a cut."""
    require_scenedetect()
    from scenedetect import ContentDetector, SceneManager, open_video

    manager = SceneManager()
    manager.add_detector(ContentDetector(threshold=threshold))
    manager.detect_scenes(open_video(str(path), backend="pyav"))
    scenes = manager.get_scene_list(start_in_scene=True)  # a video without a cut: one scene, the whole video
    return [(start.frame_num, end.frame_num) for start, end in scenes]
