"""A safetensors file's header, checked before any tensor is read.

The header is 8 bytes (its length, little-endian) and a JSON object {name: {dtype, shape,
data_offsets}, "__metadata__": {str: str}}. `read_header` refuses, naming the file, a header longer
than the file or than `MAX_HEADER_BYTES`, a tensor whose shape and dtype do not fit its byte range,
byte ranges that overlap, leave gaps or run past the end of the file, and dtypes outside `allowed`.
So a file can never make a reader allocate more than the file holds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from vop.errors import UserError

# Bytes per element of the safetensors dtypes.
ITEM_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
             "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
FLOATS = ("F32", "F16", "BF16")
# A gallery's header holds every id, path and caption: 256 MiB is several million of each.
MAX_HEADER_BYTES = 256 * 2**20


class TensorFileError(UserError, ValueError):
    """A safetensors file whose header does not describe what it holds."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def read_header(path: str | Path, allowed: dict[str, tuple[str, ...]] | tuple[str, ...] = FLOATS
                ) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """({tensor name: dtype and shape}, metadata) of a safetensors file, checked against its length.

    `allowed`: the dtypes every tensor may have, or {tensor name: its dtypes} (then exactly those
    tensors must be there)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TensorFileError(f"{path}: {size} bytes, too short for a safetensors header")
        length = int.from_bytes(head, "little")
        if length > size - 8 or length > MAX_HEADER_BYTES:
            raise TensorFileError(f"{path}: its header claims {length:,} bytes, but the file holds {size - 8:,} "
                                  f"after the length field (limit {MAX_HEADER_BYTES:,}): truncated or not safetensors")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TensorFileError(f"{path}: its header is not JSON ({err}): not a safetensors file") from None
    if not isinstance(header, dict):
        raise TensorFileError(f"{path}: its header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise TensorFileError(f"{path}: its metadata must map names to strings")
    tensors = {name: _tensor(path, name, entry) for name, entry in header.items()}
    _check_layout(path, header, size - 8 - length)
    _check_dtypes(path, tensors, allowed)
    return tensors, meta


def _tensor(path: Path, name: str, entry) -> TensorInfo:
    ok = isinstance(entry, dict) and entry.get("dtype") in ITEM_SIZE and isinstance(entry.get("shape"), list) \
        and all(isinstance(d, int) and d >= 0 for d in entry["shape"]) and _offsets(entry) is not None
    if not ok:
        raise TensorFileError(f"{path}: tensor {name!r} has no valid dtype, shape and data_offsets ({entry!r:.200})")
    begin, end = _offsets(entry)
    claimed = math.prod(entry["shape"]) * ITEM_SIZE[entry["dtype"]]
    if end - begin != claimed:
        raise TensorFileError(f"{path}: tensor {name!r} claims shape {entry['shape']} of {entry['dtype']} "
                              f"({claimed:,} bytes) but holds {end - begin:,} bytes")
    return TensorInfo(entry["dtype"], tuple(entry["shape"]))


def _offsets(entry: dict) -> tuple[int, int] | None:
    off = entry.get("data_offsets")
    if isinstance(off, list) and len(off) == 2 and all(isinstance(o, int) for o in off) and 0 <= off[0] <= off[1]:
        return off[0], off[1]
    return None


def _check_layout(path: Path, header: dict, data_bytes: int) -> None:
    """The byte ranges tile the data section exactly: no overlap, no gap, nothing past the end."""
    position = 0
    for name, entry in sorted(header.items(), key=lambda item: _offsets(item[1])):
        begin, end = _offsets(entry)
        if begin != position:
            raise TensorFileError(f"{path}: tensor {name!r} starts at byte {begin:,}, expected {position:,} "
                                  "(overlapping or gapped data)")
        position = end
    if position != data_bytes:
        raise TensorFileError(f"{path}: its tensors claim {position:,} bytes of data but the file holds "
                              f"{data_bytes:,}: truncated or padded")


def _check_dtypes(path: Path, tensors: dict[str, TensorInfo], allowed) -> None:
    if isinstance(allowed, dict):
        if set(tensors) != set(allowed):
            raise TensorFileError(f"{path}: holds tensors {sorted(tensors)}, expected {sorted(allowed)}")
    for name, info in tensors.items():
        want = allowed[name] if isinstance(allowed, dict) else allowed
        if info.dtype not in want:
            raise TensorFileError(f"{path}: tensor {name!r} is {info.dtype}, expected {' or '.join(want)}")
