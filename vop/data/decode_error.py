"""The error of a video file that cannot be read, named once for the decoders and what they use.

It lives beside the decoders rather than in their contract (vop/data/decoders/base.py, which
exports it with `Decoder`) so that the parts of vop/data the decoders import (deferred frames,
JPEG decoding) raise it without importing the decoders' folder back.
"""
from __future__ import annotations

from pathlib import Path


class VideoDecodeError(RuntimeError):
    """A video could not be read; `.path` is the file and `.reason` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot decode video {str(path)!r}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # keep (path, reason) when the error crosses a DataLoader worker boundary
        return (type(self), (self.path, self.reason))
