"""`scripts/check_videos.py`: scan every video of the selected splits and write the video manifest."""
from __future__ import annotations

import logging
from collections import Counter

from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from vop.data.manifest import scan, write_manifest
from vop.tools.selected_splits import load_selected_splits, unique_videos

log = logging.getLogger(__name__)


def check_dataset(cfg: DictConfig) -> dict[str, int]:
    """scripts/check_videos.py: scan the selected splits' videos, write `cfg.data.manifest`, summarise."""
    videos = unique_videos(load_selected_splits(cfg))
    decoder = instantiate(cfg.decoder)
    records = list(tqdm(scan(decoder, videos, cfg.workers), total=len(videos), desc=f"checking {cfg.data.name}",
                        unit="video"))
    path = write_manifest(cfg.data.manifest, records)
    counts = Counter(r["status"] for r in records)
    bad = [r for r in records if r["status"] == "error"]
    for record in bad[:20]:
        log.warning("unreadable: %s: %s", record["path"], record["error"])
    print(f"{cfg.data.name}: {len(records)} videos: {counts.get('ok', 0)} ok, {counts.get('missing', 0)} missing, "
          f"{counts.get('error', 0)} unreadable{' (first 20 listed above)' if len(bad) > 20 else ''}; "
          f"manifest: {path}")
    return dict(counts)
