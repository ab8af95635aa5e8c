"""How a config group's schema is written and checked: a dataclass whose fields are the group's keys.

A field's annotation is the key's type (`int`, `float`, `bool`, `str`, `X | None`, `list[int]`,
`list[str]`, a nested schema, `Target`, `Any`); `key(...)` adds its range, choices or pattern. A `Target` field is a
`_target_` node: its keys are the keyword arguments of the callable it names, so their names and
simple types are declared once, in that callable's signature, next to the code that reads them.

`validate(node, Schema, "trainer")` raises ConfigError for the first key that breaks its schema and
for any key the schema does not have, naming the nearest valid key. The YAML files stay the one
place the values (and their comments) live: a schema declares keys, it sets no defaults.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from vop.errors import ConfigError

# Keys Hydra's instantiate reads itself; every `_target_` node may carry them.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


class Target:
    """Annotation of a `_target_` node: `{_target_: a.b.fn, ...keyword arguments of fn}`."""


@dataclass(frozen=True)
class Rule:
    """What a key accepts beyond its type."""
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    pattern: str | None = None
    example: str = ""
    optional: bool = False  # the key may be absent (a dataset sets it only where its recipe differs)
    # read only where an option's interpolation names it (`${data.test_fraction}`): a run whose config
    # names it nowhere would ignore it (vop/config/check.py refuses it on the command line)
    interpolated: bool = False


def key(*, low: float | None = None, high: float | None = None, choices=None, pattern: str | None = None,
        example: str = "", optional: bool = False, interpolated: bool = False):
    """A schema field with a range, choices or a pattern (`seed: int = key()` is a plain key)."""
    rule = Rule(low, high, tuple(choices) if choices is not None else None, pattern, example, optional, interpolated)
    return dataclasses.field(metadata={"rule": rule})


def validate(node: DictConfig, schema: type, where: str) -> None:
    """Check every key of `node` (the config at `where`) against `schema`; refuse unknown keys."""
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown(node.keys(), fields, where, f"the {where} group" if where else "this command's config")
    for name, f in fields.items():
        rule: Rule = f.metadata.get("rule", Rule())
        if name not in node:
            if not rule.optional:
                raise ConfigError(f"{_join(where, name)} is missing: the config must set it")
            continue
        check_value(node, name, hints[name], rule, _join(where, name))


def check_group(node, schema, where: str) -> None:
    """`validate` for a schema class, `check_target` for a group that is itself a `_target_` node."""
    if schema is Target:
        check_target(node, where)
    else:
        validate(node, schema, where)


def unknown(keys, valid, where: str, owner: str) -> None:
    """ConfigError for the first key not in `valid`, with the nearest valid key when one is close."""
    for name in keys:
        if name not in valid:
            near = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
            hint = f"; did you mean {_join(where, near[0])}?" if near else \
                f"; its keys: {', '.join(sorted(str(v) for v in valid))}"
            raise ConfigError(f"{_join(where, name)} is not a key of {owner}{hint}")


def check_value(node: DictConfig, name: str, hint, rule: Rule, path: str) -> None:
    try:
        value = node[name]
    except MissingMandatoryValue:
        return  # `???` (data.videos): the command line must set it; the code reading it names the key when unset
    except OmegaConfBaseException as err:
        if "hydra" in str(err).lower() and "not set" in str(err).lower():
            return  # ${hydra:...} outside a Hydra run (tests compose without one): resolved at run time
        raise ConfigError(f"{path} cannot be resolved: {err}") from None
    if value is None and _nullable(hint):
        return
    base = _base(hint)
    if dataclasses.is_dataclass(base):
        if not isinstance(value, DictConfig):
            raise ConfigError(f"{path}={_show(value)} is not allowed: expected a group of keys")
        validate(value, base, path)
        return
    if base is Target:
        check_target(value, path)
        return
    if not _is(value, hint) or not _obeys(value, rule):
        raise ConfigError(f"{path}={_show(value)} is not allowed: expected {describe(hint, rule)}")


def check_target(node, path: str) -> None:
    """A `_target_` node: its keys must be keyword arguments of the callable, of their annotated type."""
    if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
        raise ConfigError(f"{path} must be a group with a _target_ (a callable's dotted name)")
    from hydra.utils import get_object

    try:
        target = get_object(node._target_)
    except Exception as err:  # noqa: BLE001 - any import failure is the config's fault here
        raise ConfigError(f"{path}._target_={node._target_} cannot be imported: {err}") from None
    params, hints = signature(target)
    if params is None:
        return  # no inspectable signature (a builtin): instantiate reports what does not fit
    names = [k for k in node.keys() if k not in HYDRA_KEYS]
    unknown(names, params, path, node._target_)
    for name in names:
        hint = hints.get(name)
        if hint is not None and _simple(hint):
            check_value(node, name, hint, Rule(), _join(path, name))


def signature(target: Callable) -> tuple[dict | None, dict]:
    """(keyword parameters or None when any keyword is accepted, their resolved annotations)."""
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None, {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None, {}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - annotations naming what cannot be imported here: names only
        hints = {}
    keyword = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return keyword, hints


def describe(hint, rule: Rule) -> str:
    """'an integer >= 1', 'one of auto, fp32 or null', 'a name like t2v_R@1'."""
    null = " or null" if _nullable(hint) else ""
    if rule.choices is not None:
        return f"one of {', '.join(str(c) for c in rule.choices)}{null}"
    if rule.pattern is not None:
        return f"a name like {rule.example}{null}"
    base = _base(hint)
    kind = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}.get(base)
    if kind is None and isinstance(base, tuple):
        kind = "a finite number" if set(base) <= {int, float} else " or ".join(b.__name__ for b in base)
    if kind is None:
        kind = {list[int]: "a list of integers", list[str]: "a list of strings"}.get(base, str(base))
    bounds = [f">= {_num(rule.low)}" if rule.low is not None else "",
              f"<= {_num(rule.high)}" if rule.high is not None else ""]
    text = " and ".join(b for b in bounds if b)
    return f"{kind}{' ' + text if text else ''}{null}"


def _is(value, hint) -> bool:
    base = _base(hint)
    if base is Any:
        return True
    if isinstance(base, tuple):
        return any(_is(value, b) for b in base)
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)  # `true` is not a count
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if base is str:
        return isinstance(value, str)
    if typing.get_origin(base) is list:
        return isinstance(value, (list, ListConfig)) and all(_is(v, typing.get_args(base)[0]) for v in value)
    return True  # a type this module does not check


def _obeys(value, rule: Rule) -> bool:
    if rule.choices is not None:
        return value in rule.choices
    if rule.pattern is not None:
        return isinstance(value, str) and re.fullmatch(rule.pattern, value) is not None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return (rule.low is None or value >= rule.low) and (rule.high is None or value <= rule.high)


def _base(hint):
    """The annotation without None: int | None -> int; int | float | None -> (int, float)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    args = [str if a.__module__ == "pathlib" else a for a in args if isinstance(a, type) or _is_list(a) or a is Any]
    if not args:
        return Any
    return args[0] if len(args) == 1 else tuple(args)


def _simple(hint) -> bool:
    """Annotations a signature check can hold a value to (others are left to the callable)."""
    base = _base(hint)
    return all(b in (int, float, bool, str) or _is_list(b) for b in (base if isinstance(base, tuple) else (base,)))


def _is_list(hint) -> bool:
    """`list[int]` or `list[str]`: the list types a key may have."""
    return hint in (list[int], list[str])


def _nullable(hint) -> bool:
    return hint is Any or (_is_union(hint) and type(None) in typing.get_args(hint))


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _join(where: str, name) -> str:
    return f"{where}.{name}" if where else str(name)


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else str(x)


def _show(value) -> str:
    if value == "":
        return "''"
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return str(value)
