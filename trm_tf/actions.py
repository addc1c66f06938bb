"""What the outer loop does between compiled training loops: small objects that fire on boundary crossings.

`trm_tf.train.run` runs a loop of steps, fetches its one report (`trm_tf.metrics.LoopReport`: metric sums,
gradient norm and the workers' preemption flags, reduced in the graph), then calls every action with a
`LoopEnd` (the step before and after the loop, whether it was the last one, whether the run must stop, and
that report). No action fetches from the devices or waits for storage: they read the report's host copy and
queue their writes on the run's background writer (`trm_tf.background`), which `SaveCheckpoint` flushes
before each save. An action fires when a multiple of its
cadence lies in (before, after], not when `after` happens to be one: a loop of any length (a profiler window, a
curriculum stage end, a resume from a preemption save at an odd step) can never take logging, checkpoints or
evaluations off their grid. The order in the loop is the order of safety: the NaN guard first (nothing
non-finite is ever logged as good or saved), then logging, the checkpoint, the stop, the evaluation.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import threading
import time

import tensorflow as tf
from absl import logging

from trm_tf.goodput import Goodput
from trm_tf.metrics import LoopReport


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class LoopEnd:
    """The end of one compiled training loop."""

    before: int  # global step before the loop
    after: int  # global step after it
    last: bool  # the run's last step was reached
    stop: bool  # a preemption was requested (on any worker)
    report: LoopReport | None = None  # the loop's metrics report (host copy)


def crossed(before: int, after: int, every: int) -> bool:
    """True when a multiple of `every` lies in (before, after]."""
    return every > 0 and after // every > before // every


def steps_to_next_stop(step: int, total: int, steps_per_loop: int, cadences, stops=()) -> int:
    """Length of the next compiled loop from `step`: at most `steps_per_loop`, ending on the next multiple
    of any cadence in `cadences` and at the next step in `stops` (profiler start, curriculum stage)."""
    n = min(steps_per_loop, total - step)
    for every in cadences:
        if every > 0:
            n = min(n, every - step % every)
    for s in stops:
        if s > step:
            n = min(n, s - step)
    return max(n, 1)


def eta_string(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


class NaNGuard:
    """After every loop: a non-finite loss sum (of the loop's report) stops the run before anything is
    logged or saved."""

    def __init__(self, latest_checkpoint):
        self.latest_checkpoint = latest_checkpoint

    def __call__(self, end: LoopEnd) -> None:
        if not end.report.finite:
            raise NonFiniteLossError(
                f"Non-finite loss in steps {end.before + 1}-{end.after}; stopping. The last good checkpoint "
                f"({self.latest_checkpoint()}) is kept."
            )


class LogMetrics:
    """Every `every` steps (and at the end / on a stop): the training metrics of the window since the last
    log (from the loop's report), to the log line, the progress bar, and queued for TensorBoard,
    metrics.jsonl and run_summary.json (with the goodput so far; TensorBoard also gets its shares).
    The lock's heartbeat is the background writer's."""

    def __init__(
        self,
        every: int,
        trainer,
        writer,
        rundir,
        total_steps: int,
        wall_before: float,
        goodput: Goodput | None = None,
    ):
        self.every, self.trainer, self.writer, self.rundir = every, trainer, writer, rundir
        self.total_steps = total_steps
        self.wall_before = wall_before
        self.goodput = goodput
        self.t_start = time.perf_counter()
        self.window_steps, self.window_t0 = 0, time.perf_counter()

    def steps_per_s(self) -> float:
        return self.window_steps / max(time.perf_counter() - self.window_t0, 1e-9)

    def __call__(self, end: LoopEnd) -> None:
        self.window_steps += end.after - end.before
        if not (crossed(end.before, end.after, self.every) or end.last or end.stop):
            return
        m = self.trainer.metrics_of(end.report, self.window_steps)
        dt = time.perf_counter() - self.window_t0
        m["steps_per_s"] = self.window_steps / dt
        m["examples_per_s"] = self.window_steps * self.trainer.global_batch / dt
        eta = eta_string((self.total_steps - end.after) / max(m["steps_per_s"], 1e-9))
        logging.info(
            "step %d/%d | %.1f ex/s | loss %.4f | accuracy %.4f | exact %.4f | q_halt_acc %.3f | "
            "steps %.2f | lr %.2e | ETA %s",
            end.after,
            self.total_steps,
            m["examples_per_s"],
            m["loss"],
            m["accuracy"],
            m["exact_accuracy"],
            m["q_halt_accuracy"],
            m["steps"],
            m["lr"],
            eta,
        )
        _progress(end.after, self.total_steps, m, eta)
        self.writer.write("train", end.after, m)
        fields = {}
        if self.goodput is not None:
            fields["goodput"] = record = self.goodput.record()
            self.writer.write("train", end.after, Goodput.scalars(record), jsonl=False)
        self.rundir.update_summary(
            step=end.after,
            examples_per_s=m["examples_per_s"],
            wall_time_s=self.wall_time(),
            **fields,
        )
        self.trainer.reset_metrics()
        self.window_steps, self.window_t0 = 0, time.perf_counter()

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start


def _progress(step: int, total: int, metrics: dict, eta: str) -> None:
    """A one-line progress bar on interactive terminals (logs remain the record on pods)."""
    if not sys.stderr.isatty():
        return
    width = 30
    done = int(width * step / max(total, 1))
    sys.stderr.write(
        f"\r[{'=' * done}{'.' * (width - done)}] {step}/{total} "
        f"loss {metrics.get('loss', float('nan')):.4f} exact {metrics.get('exact_accuracy', 0):.3f} "
        f"ETA {eta}   "
    )
    sys.stderr.flush()


class SaveCheckpoint:
    """Every `every` steps, at the end and on a stop: a checkpoint with the per-host carry files.

    First `flush()` (the background writer's): everything logged up to this step is written before the
    checkpoint exists, so a resume from it, which drops what was logged after its step, loses nothing."""

    def __init__(self, every: int, ckpt, flush=None, goodput: Goodput | None = None):
        self.every, self.ckpt, self.flush, self.goodput = every, ckpt, flush, goodput

    def __call__(self, end: LoopEnd) -> None:
        if crossed(end.before, end.after, self.every) or end.last or end.stop:
            if self.flush is not None:
                self.flush()
            if self.goodput is None:
                self._save(end.after)
            else:
                with self.goodput.phase("checkpointing"):
                    self._save(end.after)

    def _save(self, step: int) -> None:
        # The loss can be finite while the last update already overflowed a weight: never save that.
        if not self.ckpt.state_is_finite():
            raise NonFiniteLossError(
                f"Non-finite weights after step {step}; stopping. The last good checkpoint "
                f"({self.ckpt.latest()}) is kept."
            )
        self.ckpt.save(step)


class PeriodicEval:
    """Every `every` steps (not at the end, which has its own full evaluation, nor on a stop)."""

    def __init__(self, every: int, evaluate):
        self.every, self.evaluate = every, evaluate

    def __call__(self, end: LoopEnd) -> None:
        if crossed(end.before, end.after, self.every) and not end.last and not end.stop:
            self.evaluate(end.after)


class Preemption:
    """Remembers a SIGTERM (TPU VM preemption) so the loop saves a checkpoint and exits cleanly; under
    several worker processes the flag is agreed through the loop's report (`received` goes in, the sum
    over every process comes out), so all stop after the same step."""

    def __init__(self, num_workers: int = 1):
        self.num_workers = num_workers
        self.received = False
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread (tests)
            pass

    def _handle(self, signum, frame):
        del signum, frame
        self.received = True

    def requested(self, report: LoopReport) -> bool:
        """Whether to stop after this loop: this process's flag, or with several worker processes any
        process's, from `report` (made with `received` as its flag)."""
        if self.num_workers <= 1:
            return self.received
        return report.stop


class ProfileWindow:
    """Traces the `num_steps` training steps after step `start` into `logdir/plugins/profile`.

    The window runs as single-step calls, each inside its step marker (`Trainer.train_steps_marked`), so
    xprof's step analysis (the Overview and input-pipeline pages) finds the steps. The step before the
    traced ones (the window begins at `self.start` = `start` - 1) builds that single step untraced: it
    traces it, and on a TPU compiles it. A window that meets a curriculum stage right after that step
    builds again at the stage start and traces from there.

    With `addresses` (the profiler services of every host: the TPU runtime's port 8466 on each TPU VM of a
    pod, or each worker's own server under MultiWorkerMirrored) the client asks every host for a trace
    (`tf.profiler.experimental.client.trace`, in a thread, for a duration estimated from the measured step
    rate); a pod's TPU lanes live only in those services. Without, it traces this process (one host: the
    client is the host). Only the chief traces.
    """

    def __init__(
        self, start: int, num_steps: int, logdir: str, addresses: list[str], enabled: bool
    ):
        # The step the window begins at (its untraced first step), or -1: none (left).
        self.start = max(start - 1, 0) if start >= 0 else -1
        self.num_steps = max(1, num_steps)
        self.logdir, self.addresses, self.enabled = logdir, addresses, enabled
        self._thread = None
        self._duration_s = 0.0
        self._error: Exception | None = None

    def due(self, step: int) -> bool:
        return self.start >= 0 and step >= self.start

    def run(self, trainer, iterator, step: int, n: int, steps_per_s: float) -> None:
        """Runs the window's `n` steps (at most `num_steps` + 1) from `step`: the first untraced (it builds
        the single step), the others traced."""
        t0 = time.perf_counter()
        trainer.train_steps_marked(iterator, step, 1)
        logging.info(
            "Profiler window: step %d built the single step in %.1f s",
            step + 1,
            time.perf_counter() - t0,
        )
        if n == 1:  # a stage starts here (or the run ends): build that stage's single step next
            self.start = step + 1
            return
        self.begin(steps_per_s, n - 1)
        trainer.train_steps_marked(iterator, step + 1, n - 1)
        self.end(step + 2, step + n)
        self.start = -1

    def begin(self, steps_per_s: float, n: int) -> None:
        if not self.enabled:
            return
        if not self.addresses:
            tf.profiler.experimental.start(self.logdir)
            return
        est_ms = 1000.0 * n / steps_per_s if steps_per_s > 0 else 10_000.0
        duration_ms = int(min(max(2.0 * est_ms + 2000.0, 5000.0), 120_000))
        self._duration_s = duration_ms / 1000.0
        logging.info(
            "Tracing the profiler services %s for %d ms", ",".join(self.addresses), duration_ms
        )

        def trace():
            try:
                tf.profiler.experimental.client.trace(
                    ",".join(self.addresses), self.logdir, duration_ms
                )
            except Exception as e:  # a missing trace must not stop training
                self._error = e

        self._thread = threading.Thread(target=trace, daemon=True)
        self._thread.start()
        time.sleep(1.0)  # the services start tracing about a second after the request

    def end(self, first: int, last: int) -> None:
        if not self.enabled:
            return
        if not self.addresses:
            tf.profiler.experimental.stop()
        elif self._thread is not None:
            # The next compiled loop must not run inside the hosts' trace: xprof would take its
            # iterations for the steps and drop the markers (bounded wait; join() waits for the rest).
            self._thread.join(timeout=self._duration_s + 30.0)
        logging.info(
            "Profiler trace of steps %d-%d written to %s/plugins/profile", first, last, self.logdir
        )

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error is not None:
                logging.warning("Profiler trace of the hosts failed: %s", self._error)
