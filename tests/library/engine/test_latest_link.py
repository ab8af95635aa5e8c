"""`<log dir>/<task>/latest` links to the newest finished run, only there, and never over a non-link."""
from __future__ import annotations

import logging

from vop.engine.rundir import link_latest


def test_latest_links_the_newest_run_of_its_task_folder(tmp_path):
    home = tmp_path / "outputs" / "train"
    for name in ("2026-01-01_00-00-00_bias_msrvtt9k", "2026-01-02_00-00-00_full_msrvtt9k"):
        (home / name).mkdir(parents=True)
        link = link_latest(home / name, home)
        assert link == home / "latest" and link.resolve() == (home / name).resolve()
    assert not link.readlink().is_absolute()  # relative: the folder can move


def test_a_run_outside_the_task_folder_moves_no_link(tmp_path):
    home, own = tmp_path / "outputs" / "train", tmp_path / "my_runs" / "run1"
    own.mkdir(parents=True)
    assert link_latest(own, home) is None
    assert not (tmp_path / "my_runs" / "latest").exists() and not home.exists()


def test_a_latest_that_is_not_a_link_is_left_alone(tmp_path, caplog):
    home = tmp_path / "train"
    (home / "run").mkdir(parents=True)
    (home / "latest").write_text("my notes")
    with caplog.at_level(logging.WARNING, logger="vop.engine.rundir"):
        assert link_latest(home / "run", home) is None
    assert (home / "latest").read_text() == "my notes" and "is not a link: left as it is" in caplog.text
