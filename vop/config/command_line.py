"""The command line composed once before Hydra runs, so that Hydra's own errors are user errors.

Hydra reports a bad command line itself (an unknown option or key, `trainer.epocs=3` without `+`, a
`[` left open, `foo` without `=`): its text, then exit status 1. Composed here first, each is one
`Error:` block with exit status 2, like every other user error (vop/errors.py). A `--multirun` sweep
is composed with the first value of each swept key (every option of a swept group is checked by
check_choices); Hydra's own flags (`--help`, `--cfg job`, `--info`, ...) are left to Hydra. A
`hydra.run.dir=` that a live run holds (vop/run_lock.py) is refused here too, before Hydra writes
into it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import vop
from vop.config.choices import CHOSEN_GROUPS, check_choices
from vop.errors import ConfigError
from vop.file_writes import write_problem
from vop.run_lock import launch_rank, require_not_in_use

CONFIG_DIR = Path(vop.ROOT) / "configs"
MULTIRUN = ("-m", "--multirun")
HINT = "(override syntax: https://hydra.cc/docs/advanced/override_grammar/basic/)"


def hydra_quoted(text: str) -> str:
    """`text` as a quoted Hydra value that reads back as exactly `text` (a quote, the backslashes
    before a quote or the end, and `${` escaped)."""
    text = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return "'" + text.replace("${", "\\${") + "'"


def quoted_free_text(argv: Sequence[str], keys: Sequence[str] = ("query",)) -> list[str]:
    """Free-text values (`query="un café, s'il vous plaît"`, as the shell leaves it: unquoted) quoted
    for Hydra, whose lexer reads unquoted non-ASCII letters, commas or quotes as syntax. A value Hydra
    reads as one plain value (a list `query=[a,b]`, an already quoted one) is kept as it is."""
    parser, out = OverridesParser.create(), []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in keys and value:
            try:  # `${` is text in a query, not an interpolation
                keep = "${" not in value and not parser.parse_override(arg).is_sweep_override()
            except HydraException:
                keep = False
            arg = arg if keep else f"{key}={hydra_quoted(value)}"
        out.append(arg)
    return out


def over_checkpoint(argv: Sequence[str]) -> list[str]:
    """With `ckpt=<run>`, a key of a group the run brings (`data.test_fraction=0.3`, `+data.split_seed=1`)
    is given to Hydra as `++data.test_fraction=0.3`: it goes over the trained run's group
    (vop/engine/checkpoint_config.py), which may have keys the default option lacks (data=custom's
    over a default msrvtt9k), so Hydra must not refuse it against the default. A key the trained
    run's group does not have either is refused there, naming it. A group chosen on the command line
    (`data=didemo`) is Hydra's to check as usual."""
    keys = [arg.lstrip("+").partition("=")[0] for arg in argv]
    if not any(key == "ckpt" and arg.partition("=")[2] not in ("", "null") for key, arg in zip(keys, argv)):
        return list(argv)
    from_run = set(CHOSEN_GROUPS) - set(keys)  # the groups not chosen with `data=...`
    return [f"++{arg.lstrip('+')}" if "=" in arg and key.split(".")[0] in from_run and "." in key else arg
            for key, arg in zip(keys, argv)]


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """`method=bias,full` -> `method=bias`: the composition of a sweep's first job."""
    out = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            out.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        else:
            out.append(override.input_line)
    return out


def check_command_line(config_name: str, argv: Sequence[str], config_dir: Path = CONFIG_DIR) -> None:
    """Raise ConfigError, with Hydra's own explanation, if Hydra could not compose this command line."""
    check_choices(argv, config_dir)  # an unknown option: its group's options and the nearest one
    if any(arg.startswith("-") and arg not in MULTIRUN for arg in argv):
        return  # Hydra's own flags: what they print is Hydra's business
    overrides = [arg for arg in argv if arg not in MULTIRUN]
    try:
        if len(overrides) < len(argv):
            overrides = first_of_sweeps(overrides)
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        hint = "" if "hydra.cc" in message else f" {HINT}"
        raise ConfigError(f"the command line cannot be composed: {message}{hint}") from None
    literal = {key: value for key, _, value in (o.partition("=") for o in overrides) if value and "${" not in value}
    # A folder a live run writes into is refused before Hydra writes its own files there. Only rank 0
    # of a torchrun job checks: it takes the lock, and a rank starting later would see its own job's.
    if "hydra.run.dir" in literal and launch_rank() == 0:
        require_not_in_use(Path(literal["hydra.run.dir"]).expanduser(), "hydra.run.dir")
    if cfg.hydra.get("output_subdir") is not None:  # Hydra makes a run folder: it must be able to
        check_writable(cfg, literal, "hydra.sweep.dir" if len(overrides) < len(argv) else "hydra.run.dir")


def check_writable(cfg, literal: dict[str, str], key: str) -> None:
    """Refuse an output folder that cannot be made or written (a read-only disk, a file in the way)
    before Hydra tries to make it and fails with a traceback."""
    if key in literal:
        where, value = key, literal[key]
    else:
        where = "paths.log_dir"
        try:
            value = OmegaConf.select(cfg, where, throw_on_resolution_failure=True)
        except Exception:  # noqa: BLE001 - an interpolation only Hydra's run can resolve: left to Hydra
            return
    if not value:
        return
    problem = write_problem(str(value))
    if problem:
        raise ConfigError(f"{where}={value}: {problem}, so no run folder can be made there: give "
                          f"{where}=<a folder you can write>")
