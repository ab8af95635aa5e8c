"""W&B offline writes a run folder holding the logged scalars; online without a key goes offline."""
from pathlib import Path

import wandb

from tests.helpers import tiny_synthetic
from vop.commands.train import train
from vop.engine.loggers import wandb_mode


def wandb_payload(path: Path) -> bytes:
    """The records of a .wandb file joined: it is a LevelDB-style log (a 7-byte file header, then
    32 KiB blocks of records, each with a 7-byte header: crc, length, type), and a record that
    crosses a block boundary is split, so searching the raw bytes could miss a key."""
    raw, out, block = path.read_bytes(), bytearray(), 32768
    pos = 7
    while pos + 7 <= len(raw):
        room = block - pos % block
        if room < 7:  # block trailer padding
            pos += room
            continue
        length = int.from_bytes(raw[pos + 4:pos + 6], "little")
        if length == 0 and raw[pos + 6] == 0:
            break
        out += raw[pos + 7:pos + 7 + length]
        pos += 7 + length
    return bytes(out)


def test_wandb_offline_writes_a_run_with_the_scalars(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_synthetic("bias", tmp_path, ["logger=wandb", "trainer.max_steps_per_epoch=2", "trainer.log_every=1"])
    assert cfg.logger.wandb.mode == "offline"
    train(cfg)
    # run.finish() returns once the service has acknowledged the run's exit, but the service's
    # writer closes (flushes) the .wandb file only after that, in its own process: reading it
    # right away found it empty about one time in three. teardown() waits for the service
    # process to exit, i.e. for every stream it owned to be flushed and closed.
    wandb.teardown()
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = list(runs[0].glob("run-*.wandb"))
    assert records, f"no .wandb file in {runs[0]}"
    data = wandb_payload(records[0])
    for key in (b"train/loss", b"train/lr", b"train/videos_per_s", b"test/t2v_R@1", b"trainable_params"):
        assert key in data, key
    local = (Path(cfg.paths.output_dir) / "log.jsonl").read_text()
    assert "train/videos_per_s" in local and "test/t2v_R@1" in local and "trainable_params" in local


def test_online_without_api_key_logs_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert wandb_mode("online") == "offline"
    assert wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("online") == "online"
