"""The tensors of a TorchScript archive (OpenAI's `ViT-B-32.pt`) without running or unpickling code.

`torch.jit.load` compiles the archive's code and rebuilds its objects; `torch.load(weights_only=True)`
refuses TorchScript archives. This reader opens the archive's zip, unpickles `data.pkl` with an
allow-list (tensor rebuilding, storages, OrderedDict, and TorchScript module objects, which become
plain attribute holders) and returns every tensor under its attribute path, like `state_dict()`.
A pickle naming anything else is refused, naming the file and the object it wanted.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import torch

STORAGE_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
                  "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool}
ALLOWED = {("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
           ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
           ("collections", "OrderedDict"): collections.OrderedDict}


class UnsafeArchiveError(ValueError):
    """A file that is not a plain TorchScript archive of tensors and modules."""


class ScriptObject:
    """Stands in for any `__torch__.*` class: its pickled state becomes plain attributes."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, raw: bytes, archive: zipfile.ZipFile, prefix: str, source: str):
        import io
        super().__init__(io.BytesIO(raw))
        self.archive, self.prefix, self.source = archive, prefix, source

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return ScriptObject
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        raise UnsafeArchiveError(f"{self.source}: refused: its data.pkl needs {module}.{name} (only tensors, "
                                 "storages and TorchScript modules are read)")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid  # ('storage', dtype, key, location, numel)
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise UnsafeArchiveError(f"{self.source}: unexpected persistent id {pid!r}")
        data = self.archive.read(f"{self.prefix}/data/{key}")
        flat = torch.frombuffer(bytearray(data), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        return torch.storage.TypedStorage(wrap_storage=flat.untyped_storage(), dtype=dtype, _internal=True)


def _flatten(obj, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value.detach()
        elif isinstance(value, ScriptObject):
            _flatten(value, f"{prefix}{name}.", out)


def is_torchscript(path: str | Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.split("/")[1:2] == ["code"] for n in archive.namelist())


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree, named by attribute path."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UnsafeArchiveError(f"{path}: not a TorchScript archive (no <name>/data.pkl)")
        prefix = pickles[0].split("/")[0]
        root = _Unpickler(archive.read(pickles[0]), archive, prefix, str(path)).load()
    if not isinstance(root, ScriptObject):
        raise UnsafeArchiveError(f"{path}: the archive's root is not a module")
    out: dict[str, torch.Tensor] = {}
    _flatten(root, "", out)
    return out
