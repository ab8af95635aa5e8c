"""A background thread that produces the next item while the caller works on the current one.

`DeviceFeed` runs its loading (the next `next(loader)`, the host->device copy and any GPU decoding
of deferred frames) here, so NVDEC/nvJPEG decoding overlaps the whole training step rather than
only the tail of the previous step's queued kernels. It keeps exactly one item in flight: the
thread starts item n+1 when the caller takes item n, so no more batches sit on the GPU than
before. Errors raised in the thread are re-raised in the caller, with their traceback.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
_END, _ITEM, _ERROR = "end", "item", "error"


class Prefetcher(Generic[T]):
    """Iterate `produce()` results computed one ahead in a daemon thread; `produce` raises StopIteration at the end.

    Use as a context manager (or call `close`): a caller that stops early releases the thread.
    """

    def __init__(self, produce: Callable[[], T], name: str = "prefetch"):
        self.produce = produce
        self._wanted = threading.Semaphore(1)  # one token: the thread may start one item
        self._results: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.acquire()
            if self._stop.is_set():
                return
            try:
                result = (_ITEM, self.produce())
            except StopIteration:
                result = (_END, None)
            except BaseException as err:  # noqa: BLE001 - handed to the caller, who re-raises it
                result = (_ERROR, err)
            self._results.put(result)
            if result[0] != _ITEM:
                return

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._results.get()
        if kind == _ITEM:
            self._wanted.release()  # start the next item while the caller uses this one
            return value
        self._done = True
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wanted.release()  # wake the thread if it waits for a token
        self._thread.join(timeout)  # a thread stuck in produce() is a daemon: it cannot block exit

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
