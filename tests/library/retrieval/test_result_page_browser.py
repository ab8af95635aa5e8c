"""The result page renders in a real browser: headless Chromium screenshot, checked for content."""
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from vop.data.synthetic import random_spec, render
from vop.retrieval.html import Hit, QueryView, write_page


def strip(combo, seed: int) -> list[Image.Image]:
    spec = random_spec("v", combo, 8, 96, 72, np.random.default_rng(seed))
    return [Image.fromarray(f) for f in render(spec, 8, 96, 72)[::2]]  # 4 frames


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium found (Debian: apt-get install chromium)")


@pytest.mark.slow
def test_page_screenshot_is_not_blank(tmp_path):
    hits = [Hit(f"video{i}", 0.9 - 0.1 * i, strip(("circle", c, "black", "left"), i), is_gt=i == 1)
            for i, c in enumerate(("red", "green", "blue"))]
    views = [QueryView("a green circle moves to the left", "t2v", hits),
             QueryView("clip.mp4", "v2t", [Hit("a red circle moves left", 0.5, [], True)],
                       strip(("square", "red", "white", "up"), 9))]
    page, _ = write_page(views, tmp_path / "page.html")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1000,800", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)  # [H, W, 3]
    background = np.median(pixels.reshape(-1, 3), axis=0)
    differs = (np.abs(pixels - background).sum(axis=2) > 60).mean()
    assert differs > 0.02, f"only {differs:.1%} of the screenshot differs from the background"
    # The ground-truth frame colour (#1a9641) is drawn, so the CSS applied.
    assert (np.abs(pixels - np.array([0x1A, 0x96, 0x41])).sum(axis=2) < 30).sum() > 100
