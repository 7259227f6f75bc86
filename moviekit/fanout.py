"""The consumers of one decode, run side by side: each sink on its own thread behind a bounded queue.

The reader decodes a video once and hands every batch to every consumer.  Called one after the
other, the consumers' costs (and the decoding) add up; here each sink runs on its own thread, so the
slowest of them bounds the wall time instead of the sum (a lone consumer overlaps the decoding).  Threads are enough because the work inside sinks (torch,
OpenCV, NumPy's FFT and reductions, PyAV) releases the GIL.

What :class:`Fanout` guarantees:

* **Same results as serial.**  Each sink receives its batches in the reader's order, all on one
  thread, and is closed on that thread after its last batch; nothing else touches it.
* **Bounded memory (backpressure).**  At most ``depth`` batches wait in a sink's queue; the reader
  blocks on a full queue, so at most ``depth + 1`` batches per consumer are alive whatever the
  consumers' speeds.
* **Isolation.**  An exception in one sink stops that sink only (its later batches are dropped); the
  others run to the end and their results are returned.  ``close`` reports each sink's result or
  error, and the caller decides (the runner keeps the good results and fails the item).

``Fanout(..., concurrent=False)`` gives the same isolation on the calling thread (no threads), for
debugging and as the reference the concurrent path is tested against.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from .components import Sink
from .records import AudioChunk, FrameBatch
from .threads import library_threads, per_consumer_threads

#: Batches that may wait in one consumer's queue (per consumer, besides the one it is working on).
DEFAULT_DEPTH = 2

_CLOSE = "close"
_ABORT = "abort"


class _SerialSink(Sink):
    """Calls the sink on the caller's thread; a raising sink is remembered and skipped from then on."""

    def __init__(self, sink: Sink):
        self.inner = sink
        self.error: BaseException | None = None
        self.result: Any = None

    def _call(self, kind: str, payload: Any) -> None:
        if self.error is not None:
            return
        try:
            getattr(self.inner, kind)(payload)
        except Exception as e:  # noqa: BLE001 - kept and reported by close()
            self.error = e

    def frames(self, batch: FrameBatch) -> None:
        self._call("frames", batch)

    def audio(self, chunk: AudioChunk) -> None:
        self._call("audio", chunk)

    def start_close(self) -> None:
        if self.error is None:
            try:
                self.result = self.inner.close()
            except Exception as e:  # noqa: BLE001
                self.error = e

    def finish(self) -> tuple[Any, BaseException | None]:
        return self.result, self.error

    def abort(self) -> None:
        pass


class ThreadedSink(_SerialSink):
    """Runs a sink on its own thread; ``frames``/``audio`` only queue the batch (and block when full)."""

    def __init__(self, sink: Sink, depth: int = DEFAULT_DEPTH, name: str = "sink"):
        super().__init__(sink)
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        #: batches accepted so far (for tests and diagnostics)
        self.submitted = 0
        self.thread = threading.Thread(target=self._work, name=f"moviekit-{name}", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            kind, payload = self.queue.get()
            if kind == _ABORT:
                return
            try:
                if kind == _CLOSE:
                    super().start_close()
                else:
                    self._call(kind, payload)
            except BaseException as e:  # noqa: BLE001 - SystemExit and the like: recorded, and the queue keeps draining
                self.error = e
            if kind == _CLOSE:
                return

    def _put(self, kind: str, payload: Any) -> None:
        if self.error is not None:
            return  # this consumer failed: the reader need not wait for it any more
        self.queue.put((kind, payload))
        self.submitted += 1

    def frames(self, batch: FrameBatch) -> None:
        self._put("frames", batch)

    def audio(self, chunk: AudioChunk) -> None:
        self._put("audio", chunk)

    def start_close(self) -> None:
        self.queue.put((_CLOSE, None))

    def finish(self) -> tuple[Any, BaseException | None]:
        self.thread.join()
        return self.result, self.error

    def abort(self) -> None:
        """Stop the thread without closing the sink (the decode failed); queued batches are dropped."""
        if not self.thread.is_alive():
            return
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.queue.put((_ABORT, None))
        self.thread.join()


class Fanout:
    """Wraps the sinks of one decode so they run concurrently (see the module docstring).

    Use as a context manager around the reader's ``read``; hand the reader :attr:`sinks`, then
    call :meth:`close`::

        with Fanout(sinks, threads=budget) as fan:
            reader.read(video, list(zip(needs, fan.sinks)))
            outcomes = fan.close()   # [(result, None) | (None, error)] in the order of ``sinks``

    ``threads`` is the run's CPU thread budget: while the consumers run, torch's and OpenCV's
    thread pools are sized to ``threads // len(sinks)`` (at least 1) so that concurrent consumers
    do not oversubscribe the cores (see :func:`moviekit.threads.per_consumer_threads`).
    If the body raises (the decode failed), the threads are stopped and the sinks are not closed.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        concurrent: bool = True,
        depth: int = DEFAULT_DEPTH,
        threads: int | None = None,
        names: Sequence[str] | None = None,
    ):
        names = list(names) if names is not None else [f"sink{i}" for i in range(len(sinks))]
        # Even a single consumer gets a thread: its work then overlaps the decoding.
        self.concurrent = concurrent
        self.depth = depth
        self.library_threads = per_consumer_threads(threads, len(sinks) if self.concurrent else 1)
        self._threads_cm: Any = None
        if self.concurrent:
            self.sinks: list[Any] = [ThreadedSink(s, depth, n) for s, n in zip(sinks, names)]
        else:
            self.sinks = [_SerialSink(s) for s in sinks]
        self._closed = False

    def __enter__(self) -> Fanout:
        self._threads_cm = library_threads(self.library_threads)
        self._threads_cm.__enter__()
        return self

    def close(self) -> list[tuple[Any, BaseException | None]]:
        """Close every sink (concurrently) and return ``(result, error)`` per sink, in order."""
        for s in self.sinks:
            s.start_close()
        out = [s.finish() for s in self.sinks]
        self._closed = True
        return out

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if not self._closed:
                for s in self.sinks:
                    s.abort()
        finally:
            self._threads_cm.__exit__(exc_type, exc, tb)


__all__ = ["DEFAULT_DEPTH", "Fanout", "ThreadedSink"]
