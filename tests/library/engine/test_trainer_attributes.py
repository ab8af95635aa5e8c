"""The Trainer declares every attribute it has in `__init__`, so its state reads in one place."""
from __future__ import annotations

import ast
import inspect

from vop.engine import trainer


def assigned_attributes(func: ast.FunctionDef) -> set[str]:
    targets = []
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            targets += node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets.append(node.target)
    return {e.attr for t in targets for e in ast.walk(t)
            if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "self"}


def test_every_trainer_attribute_is_declared_in_init():
    cls = next(n for n in ast.parse(inspect.getsource(trainer)).body
               if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    in_init = assigned_attributes(methods["__init__"])
    # `self.overflow_steps = 0` in __init__ runs the property's setter, which declares these two.
    in_init |= {"_overflow_base", "_overflow"} if "overflow_steps" in in_init else set()
    elsewhere = {(name, attr) for name, f in methods.items() if name != "__init__"
                 for attr in assigned_attributes(f) - in_init}
    assert elsewhere == set()
