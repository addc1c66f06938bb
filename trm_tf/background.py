"""The run directory's background writer: storage calls off the training path.

On a pod every `tf.io.gfile` call on gs:// is an HTTPS round trip (tens of ms; a rename is a copy and a
delete), so the chief does not write its logs, run_summary.json or the lock heartbeat between two compiled
loops: it hands them to one writer thread through a bounded queue and goes on.

* `submit(fn)` queues a write; when `max_pending` writes are queued it blocks (back-pressure, not unbounded
  memory). `submit(fn, key=...)` replaces a queued write of the same key (run_summary.json: only the newest
  content is written).
* `flush()` blocks until every queued write is done (durable) and re-raises, on the calling thread, the
  first error a write raised since the last flush. `trm_tf.train` flushes before every checkpoint save (so
  nothing logged up to a checkpoint's step can be lost: the resume truncation then drops exactly what came
  after it), on preemption and at the end; `close()` flushes and joins the thread.
* `heartbeat` (the workdir lock's) runs from the thread at most every `heartbeat_every_s`
  (the caller's, `trm_tf.workdir.HEARTBEAT_EVERY_S` for the lock), also while the main thread compiles or evaluates for minutes.

`threaded=False` runs every write inline on the caller (tools and tests that write a few records).
"""

from __future__ import annotations

import collections
import threading
import time


class BackgroundWriteError(RuntimeError):
    """A write of the background writer failed (the original error is its __cause__)."""


class BackgroundWriter:
    """One writer thread with a bounded queue of callables; see the module docstring."""

    def __init__(
        self,
        max_pending: int = 32,
        heartbeat=None,
        heartbeat_every_s: float = 120.0,
        threaded: bool = True,
    ):
        self.max_pending = max(1, int(max_pending))
        self._heartbeat = heartbeat
        self._heartbeat_every_s = float(heartbeat_every_s)
        self._last_beat = time.monotonic()
        self._cond = threading.Condition()
        self._tasks: collections.deque = collections.deque()  # (key, fn)
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self.threaded = threaded
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="trm-writer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ caller side
    def submit(self, fn, key: str | None = None) -> None:
        """Queues `fn()`; with `key`, replaces a queued call of the same key instead of adding one."""
        if not self.threaded:
            fn()
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("the background writer is closed")
            if key is not None:
                for i, (k, _) in enumerate(self._tasks):
                    if k == key:
                        self._tasks[i] = (key, fn)
                        return
            while len(self._tasks) >= self.max_pending and self._thread.is_alive():
                self._cond.wait()
            self._tasks.append((key, fn))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._tasks) + int(self._busy)

    def flush(self) -> None:
        """Blocks until every queued write is done; re-raises the first error of a write since the last
        flush (as BackgroundWriteError from the original)."""
        if self.threaded:
            with self._cond:
                while (self._tasks or self._busy) and self._thread.is_alive():
                    self._cond.wait()
                error, self._error = self._error, None
            if error is not None:
                raise BackgroundWriteError(
                    f"a background write failed: {type(error).__name__}: {error}"
                ) from error

    def close(self) -> None:
        """Flushes, stops and joins the thread (idempotent); re-raises a write's error like flush()."""
        if not self.threaded or self._thread is None:
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self.flush()

    # ------------------------------------------------------------------ thread side
    def _beat_due(self) -> float:
        """Seconds until the next heartbeat (<= 0: due); inf without a heartbeat."""
        if self._heartbeat is None:
            return float("inf")
        return self._last_beat + self._heartbeat_every_s - time.monotonic()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not self._closed and self._beat_due() > 0:
                    wait = self._beat_due()
                    self._cond.wait(timeout=None if wait == float("inf") else wait)
                if self._beat_due() <= 0 and not self._closed:
                    fn = self._beat
                elif self._tasks:
                    _, fn = self._tasks.popleft()
                else:
                    return  # closed and drained
                self._busy = True
                self._cond.notify_all()  # a slot is free
            try:
                fn()
            except BaseException as e:  # noqa: BLE001  (re-raised on the main thread by flush)
                with self._cond:
                    if self._error is None:
                        self._error = e
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        self._heartbeat()
