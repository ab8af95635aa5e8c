"""The package's layers, read from the source: no import cycle, and no module imports a layer above it.

Every `import` counts, also one inside a function (an import deferred to call time still ties the
two modules together). Edges into a package's own `__init__` are not counted: Python imports the
parent package first whatever the code says. For the same reason the package root (vop/__init__.py)
is in the bottom layer: it runs before every module, so what it imports sits under all of them.
No file of the repository imports another module's private (`_name`) names.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "vop"

# Bottom to top. A module may import its own layer and the layers below it. `vop.<name>` modules
# and packages that are not listed fail the test, so a new part of the package is placed on purpose.
LAYERS = (
    ("errors", "paper", "losses", "metrics", "run_lock", "file_writes", "result_count"),  # pure: none but errors
    ("data", "models"),                          # frames and captions in; CLIP and its hooks
    ("methods",),                                # what each tuning method trains
    ("config",),                                 # the config schema and checks: knows every group
    ("engine",),                                 # training and evaluation loops, checkpoints, runs
    ("retrieval",),                              # galleries, indexes, query pipeline, pages
    ("commands",),                               # what train.py / eval.py / retrieve.py run
    ("tools",),                                  # one module per script in scripts/
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
PACKAGE_ROOT = "vop"  # vop/__init__.py


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = REPO_ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """Project modules that `path` imports, resolved to modules (not names inside them)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "vop")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "vop":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if is_module(full) else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {m for m in imported_modules(path) if m != name and m not in packages and m != "vop"}
    return graph


def layer(module: str) -> int | None:
    if module == PACKAGE_ROOT:
        return 0
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def label(module: str) -> str:
    return "the package root" if module == PACKAGE_ROOT else LAYERS[layer(module)][0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({label(m)}) imports {d} ({label(d)})"
                  for m, deps in graph.items() if layer(m) is not None
                  for d in deps if layer(d) is not None and layer(d) > layer(m))


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert parts - set(RANK) == set(), "place these in LAYERS"


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_no_upward_import():
    assert upward_imports(import_graph()) == []


def test_the_package_root_imports_only_the_bottom_layer():
    """`import vop.<anything>` runs vop/__init__.py first: an import there from a higher layer would
    tie every module, the bottom layer's too, to that layer (the old root's config resolvers did)."""
    graph = import_graph()
    assert PACKAGE_ROOT in graph
    assert sorted(d for d in graph[PACKAGE_ROOT] if layer(d) != 0) == []


def private_imports(source: str, own: str) -> list[tuple[int, str, str]]:
    """(line, module, name) of each `from <project module> import _name` in `source`, the text of
    module `own`, from a module other than `own` (a module's underscore names are its own: another
    module that needs one needs it made public)."""
    return [(node.lineno, node.module, alias.name) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != own
            and (node.module or "").split(".")[0] in ("vop", "tests")
            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]


def repository_sources() -> list[Path]:
    """The repository's own Python files: the package, tests, scripts and the entry points."""
    return sorted([*REPO_ROOT.glob("*.py"), *(p for d in ("vop", "tests", "scripts") for p in (REPO_ROOT / d).rglob("*.py"))])


def test_no_module_imports_another_modules_private_names():
    found = [f"{path.relative_to(REPO_ROOT)}:{line} imports {name} from {module}" for path in repository_sources()
             for line, module, name in private_imports(path.read_text(), module_name(path))]
    assert found == []


def test_the_private_name_check_would_fail():
    source = "from vop.data.synthetic import VideoSpec, _plan\nfrom vop.data.tokenizer import __doc__\n" \
             "import vop.data.synthetic\nfrom numpy import _globals\nfrom vop.data.synthetic_stills import _own\n"
    assert private_imports(source, "vop.data.synthetic_stills") == [(1, "vop.data.synthetic", "_plan")]


def test_checks_would_fail_on_a_cycle_and_an_upward_import():
    """The checks themselves: the old main's two defects and the old package root's resolvers,
    restated as a graph, are all found."""
    graph = {"vop.engine.evaluate": {"vop.engine.rundir", "vop.retrieval.html"},
             "vop.engine.rundir": {"vop.engine.evaluate"}, "vop.retrieval.html": set(),
             "vop.data.bad_videos": {"vop.tools.selected_splits"}, "vop.tools.selected_splits": set(),
             "vop": {"vop.errors", "vop.engine.rundir"}, "vop.errors": set()}
    assert find_cycle(graph) in (["vop.engine.evaluate", "vop.engine.rundir", "vop.engine.evaluate"],
                                 ["vop.engine.rundir", "vop.engine.evaluate", "vop.engine.rundir"])
    assert upward_imports(graph) == [
        "vop (the package root) imports vop.engine.rundir (engine)",
        "vop.data.bad_videos (data) imports vop.tools.selected_splits (tools)",
        "vop.engine.evaluate (engine) imports vop.retrieval.html (retrieval)"]


def test_scripts_and_entry_points_stay_thin():
    """Each script calls its `vop.tools` module; the entry points call `vop.commands`."""
    for script in sorted((REPO_ROOT / "scripts").glob("*.py")):
        lines = len(script.read_text().splitlines())
        assert lines <= 60 or script.stem in THICK_SCRIPTS, f"{script.name}: {lines} lines; move its logic to vop/tools"
    for entry, command in (("train.py", "vop.commands.train"), ("eval.py", "vop.commands.eval"),
                           ("retrieve.py", "vop.commands.retrieve")):
        assert command in imported_modules(REPO_ROOT / entry), entry


# gpu_check.py unpacks and installs the carried wheels on a bare GPU machine before vop's
# dependencies exist, so it is standard library only and cannot import vop.
THICK_SCRIPTS = {"gpu_check"}
