"""pyproject.toml declares what vop imports: a module imported when vop's modules load comes from a
core dependency; one imported only inside a function (an optional part: the server, FAISS, W&B,
more decoders) from a core dependency or an extra; the `test` extra installs every extra."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.helpers import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
# Installed beside the declared ones, as pyproject.toml says: torch and torchvision for your platform,
# open_clip_torch without its dependencies.
UNDECLARED = {"open-clip-torch", "torch", "torchvision"}
# Modules of an optional part, which import its extra when they load: only loaded on use (no module
# outside them imports them when it loads).
EXTRA_MODULES = {"serve": {"vop/retrieval/server.py", "vop/retrieval/request_log.py", "vop/retrieval/host_check.py"}}


def name_of(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports(deferred: bool) -> dict[str, set[str]]:
    """{top-level module: files} that vop/ imports at module level (deferred=False) or inside functions."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "vop").rglob("*.py")):
        tree = ast.parse(path.read_text())
        # loaded with the module: its body and top-level `if`s; a `try: import x / except ImportError`
        # is an optional import (x is used when present)
        top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, ast.If) for n in ast.walk(s)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if (id(node) not in top) != deferred:
                continue
            for name in names:
                root = name.split(".")[0]
                if root and root != "vop" and root not in sys.stdlib_module_names:
                    found.setdefault(root, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def distributions(module: str) -> set[str]:
    return {name_of(d) for d in packages_distributions().get(module, [module])}


def extra(name: str) -> set[str]:
    return {name_of(r) for r in PROJECT["optional-dependencies"][name]}


def test_what_vop_imports_when_it_loads_is_a_core_dependency():
    core = {name_of(r) for r in PROJECT["dependencies"]} | UNDECLARED
    missing = {}
    for module, files in third_party_imports(deferred=False).items():
        files = {f for f in files if not any(f in owned and distributions(module) & extra(name)
                                             for name, owned in EXTRA_MODULES.items())}
        if files and not distributions(module) & core:
            missing[module] = files
    assert not missing, f"declare in pyproject.toml's dependencies: {missing}"


def test_an_optional_parts_modules_load_only_on_use():
    owned = {f.removesuffix(".py").replace("/", ".") for files in EXTRA_MODULES.values() for f in files}
    for path in sorted((REPO_ROOT / "vop").rglob("*.py")):
        if str(path.relative_to(REPO_ROOT)) in {f for files in EXTRA_MODULES.values() for f in files}:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
                assert not names & owned, f"{path.relative_to(REPO_ROOT)} loads {names & owned} when it loads"


def test_what_vop_imports_on_use_is_a_dependency_or_an_extra():
    declared = {name_of(r) for r in PROJECT["dependencies"]} | UNDECLARED
    declared |= {name_of(r) for extra in PROJECT["optional-dependencies"].values() for r in extra}
    missing = {m: files for m, files in third_party_imports(deferred=True).items() if not distributions(m) & declared}
    assert not missing, f"declare in pyproject.toml (a dependency or an extra): {missing}"


def test_the_test_extra_installs_every_other_extra():
    extras = PROJECT["optional-dependencies"]
    named = {e for r in extras["test"] if r.startswith("vop[") for e in r[4:-1].split(",")}
    assert named == set(extras) - {"test", "all", "nvdec"}  # nvdec: a GPU's decoder
    assert {e for r in extras["all"] for e in r[4:-1].split(",")} == named
