"""What every run leaves in its directory: resolved config, metrics.json."""
from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig, OmegaConf

from vop.errors import UserError
from vop.file_writes import failure_reason, write_whole


log = logging.getLogger(__name__)

LATEST = "latest"


def run_name(ckpt: str | None, method: str, data: str, overrides: list[str] | None = None) -> str:
    """`<method>_<data>` for the run folder; with `ckpt=` a trained run's method and data (as
    eval.py and retrieve.py take them from it) unless the command line chose them."""
    if not ckpt:
        return f"{method}_{data}"
    from vop.engine.checkpoint import read_checkpoint  # torch: only when a ckpt is given
    from vop.engine.checkpoint_config import option_chosen

    try:
        saved = read_checkpoint(ckpt, tensors=False)[1]
    except UserError:  # a released .pth, a bad path or a refused stored config: eval.py reports it itself
        return f"{method}_{data}"
    overrides = list(overrides or [])
    method = method if option_chosen(overrides, "method") else saved.method.name
    data = data if option_chosen(overrides, "data") else saved.data.name
    return f"{method}_{data}"


def register_run_name_resolver() -> None:
    """`${vop.run_name:<ckpt>,<method>,<data>,<overrides>}` names the run folder in configs/hydra (eval.py
    ckpt=: after the checkpoint's run). The Hydra mains register it before Hydra resolves their run
    folder; it lives here, not with vop/config/resolvers.py, because it reads a checkpoint."""
    if not OmegaConf.has_resolver("vop.run_name"):
        OmegaConf.register_new_resolver("vop.run_name", run_name)


HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}  # what Hydra writes into <run dir>/.hydra/


def remove_unused_run_dir(run_dir: str | Path, job_log: str) -> bool:
    """Remove a run folder that holds only what Hydra wrote at start (`.hydra/` and the job's log
    file `job_log`): a run refused before it wrote anything leaves no folder. Anything else in it (a
    live run's files, a user's own) keeps the folder as it is."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    entries = list(run_dir.iterdir())
    for entry in entries:
        hydra = entry.name == ".hydra" and entry.is_dir() and not entry.is_symlink() and \
            {p.name for p in entry.iterdir()} <= HYDRA_FILES
        if not (hydra or (entry.name == job_log and entry.is_file() and not entry.is_symlink())):
            return False
    for entry in entries:
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    run_dir.rmdir()
    return True


@contextmanager
def no_folder_if_refused(run_dir: str | Path, job_log: str) -> Iterator[None]:
    """A user error inside (a refused config, missing data, a busy run folder) removes the run
    folder Hydra made for it, when nothing but Hydra's own files are in it."""
    try:
        yield
    except UserError:
        remove_unused_run_dir(run_dir, job_log)
        raise


def save_config(run_dir: Path, cfg: DictConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


METRICS = "metrics.json"


def save_metrics(run_dir: Path, metrics: dict) -> Path:
    """metrics.json, atomically: a temporary file, then a rename (a failed write leaves no half file)."""
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    return write_whole(Path(run_dir) / METRICS, lambda tmp: tmp.write_text(text))


class OutputWriteError(UserError):
    """A run's result could not be written (a full disk, a folder gone read-only)."""

    def __init__(self, run_dir: Path, what: str, err: OSError, saved: list[str], unsaved: list[str], metrics: dict):
        reason = failure_reason(err)
        shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in metrics.items()
                 if k.split("/")[-1].startswith(("t2v_", "v2t_"))}
        super().__init__(
            f"could not write {what} into {run_dir}: {reason}. Saved: {', '.join(saved) or 'nothing'}; "
            f"not saved: {', '.join([what, *unsaved])}. The run's metrics: {json.dumps(shown, sort_keys=True)}")


def write_outputs(run_dir: Path, writes: list[tuple[str, object]], metrics: dict) -> list[str]:
    """Run `writes` ((name, zero-argument writer), most valuable first); an OSError stops them with an
    OutputWriteError that says what was saved, what was not, and the metrics."""
    saved: list[str] = []
    for i, (name, write) in enumerate(writes):
        try:
            write()
        except OSError as err:
            raise OutputWriteError(run_dir, name, err, saved, [n for n, _ in writes[i + 1:]], metrics) from None
        saved.append(name)
    return saved


def link_latest(run_dir: Path, home: Path) -> Path | None:
    """Point `home/latest` at this run (a relative symlink, replaced atomically), so commands can name
    the newest finished run: `eval.py ckpt=outputs/train/latest`. `home` is `<paths.log_dir>/<task>`,
    the folder docs/training.md names: a run elsewhere (`hydra.run.dir=...`, a multirun job) moves
    no link, and a `latest` that is not a symlink (a user's file or folder) is never replaced."""
    run_dir = Path(run_dir)
    if run_dir.parent.resolve() != Path(home).resolve():
        return None
    link = run_dir.parent / LATEST
    if os.path.lexists(link) and not link.is_symlink():
        log.warning("%s is not a link: left as it is (the newest run is %s)", link, run_dir)
        return None
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # a file system without symlinks: the run itself is complete, only the link is missing
        return None
    return link


def split_sizes(splits: dict) -> dict[str, int]:
    """`{"train/num_videos": 80, "train/num_captions": 160, "test/num_videos": 20, ...}` for metrics.json:
    the splits a run had (a user's own data set's held-out draw is visible without the log)."""
    return {f"{name}/{what}": getattr(split, what) for name, split in sorted(splits.items())
            for what in ("num_videos", "num_captions")}


def run_summary(count, splits: dict, test_name: str) -> dict:
    """What train.py's and eval.py's metrics.json both hold beside the metrics: the parameter counts
    (`count`: trainable, total), each split's size after skipped videos, the test queries and chance R@1."""
    test = splits[test_name]
    return {"trainable_params": count.trainable, "total_params": count.total, **split_sizes(splits),
            f"{test_name}/num_queries": test.num_captions, f"{test_name}/chance_R@1": 100.0 / test.num_videos}


def prefixed(metrics: dict[str, float], split: str) -> dict[str, float]:
    """`t2v_R@1` -> `test/t2v_R@1`."""
    return {f"{split}/{k}": v for k, v in metrics.items()}
