"""The run directory: every file a run writes, in one object (format: docs/run_directory.md).

`RunDir(path)` names each file of a run (local path or gs://) and reads/writes them through tf.io.gfile;
`sweep`, `analysis` and `launch.py` use the same JSON helpers below, so a run directory written on a TPU VM
reads the same on a laptop. A run directory describes itself: `config.json` holds the full config, so
tools can rebuild the model from `--checkpoint=RUN_DIR` alone (`RunDir.read_config`).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from trm_tf.analysis.run_config import flatten_config, upgrade_config_dict

CONFIG = "config.json"
SUMMARY = "run_summary.json"
EVAL_RESULTS = "eval_results.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LOCK = "run.lock"
ARC_VOTES = "votes.json"  # in arc_votes/step_N/: the merged votes of the ARC evaluation at step N


def write_json(path: str, obj) -> None:
    """Writes JSON atomically (temp file + rename) through tf.io.gfile."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=float)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path: str, default=None):
    """The JSON at `path` (local or gs://), or `default` when the file does not exist.

    The one reader of the run directory's JSON files, for the trainer, the tools, the run tables and
    `sweep.py`. A file that is not JSON raises ValueError naming it (the run's own files are written
    atomically, so that is damage, not a file caught half-way); readers of runs that may be damaged
    (`trm_tf.analysis.scalars.read_run_json`) catch it.
    """
    if not tf.io.gfile.exists(path):
        return default
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e})") from None


def read_jsonl(path: str) -> list[dict]:
    """Reads a JSON-lines file (skips a truncated last line of a killed run)."""
    out = []
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class RunDir:
    """Paths and small-file I/O of one run directory.

    Only the chief writes (`writer=True`); every process may read. The writer keeps run_summary.json's
    content in memory after its first read (it is the file's only writer), so an update does not read it
    back. With `background` set (a `trm_tf.background.BackgroundWriter`, during training) summary updates
    are queued there, only the newest content of a burst being written.
    """

    def __init__(self, path: str, writer: bool = True):
        self.path = path if "://" in path else os.path.abspath(os.path.expanduser(path))
        self.writer = writer
        self.lock: RunLock | None = None  # set by the launcher that holds the workdir
        self.background = None  # set by trm_tf.train while it trains
        self._summary: dict | None = None

    def heartbeat(self) -> None:
        """Refreshes the workdir lock's heartbeat (from the background writer's thread while training)."""
        if self.lock is not None:
            self.lock.heartbeat()

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoints(self) -> str:
        return self.file(CHECKPOINTS)

    def submission(self, step: int) -> str:
        return self.file(f"submission_step{step}.json")

    def arc_votes(self, step: int) -> str:
        return self.file(os.path.join("arc_votes", f"step_{step}"))

    # -------------------------------------------------------------- config
    def write_config(self, config) -> None:
        if self.writer:
            tf.io.gfile.makedirs(self.path)
            with tf.io.gfile.GFile(self.file(CONFIG), "w") as f:
                f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    def read_config(self):
        """The run's config as a ConfigDict in today's layout, however old its config.json
        (`run_config.upgrade_config_dict`); raises FileNotFoundError naming the file."""
        import ml_collections

        data = read_json(self.file(CONFIG))
        if data is None:
            raise FileNotFoundError(
                f"{self.file(CONFIG)} not found: is {self.path} a run directory?"
            )
        return ml_collections.ConfigDict(upgrade_config_dict(data))

    # -------------------------------------------------------------- run summary
    def summary(self) -> dict:
        """run_summary.json's content (read once by the writer, then its in-memory copy)."""
        if self.writer and self._summary is not None:
            return dict(self._summary)
        data = read_json(self.file(SUMMARY), {}) or {}
        if self.writer:
            self._summary = dict(data)
        return data

    def update_summary(self, **fields) -> dict:
        """Merges `fields` into run_summary.json (chief only; through `background` when set) and returns
        the new summary."""
        data = {**self.summary(), **fields}
        if self.writer:
            self._summary = dict(data)
            path, snapshot = self.file(SUMMARY), dict(data)
            if self.background is not None:
                self.background.submit(lambda: write_json(path, snapshot), key=SUMMARY)
            else:
                write_json(path, snapshot)
        return data

    # -------------------------------------------------------------- evaluations
    def eval_results(self) -> dict:
        return read_json(self.file(EVAL_RESULTS), {"latest": {}, "history": []})

    def add_eval(self, entry: dict, tag: str = "") -> None:
        """Appends an evaluation to eval_results.json (`tag`: kept apart, e.g. "average")."""
        results = self.eval_results()
        if tag:
            results[tag] = entry
        else:
            results["history"].append(entry)
            results["latest"] = entry
        if self.writer:
            write_json(self.file(EVAL_RESULTS), results)

    def evaluated_steps(self) -> set[int]:
        return {int(h.get("step", -1)) for h in self.eval_results()["history"]}

    # -------------------------------------------------------------- ARC votes
    def write_arc_votes(self, step: int, state: dict) -> None:
        """Stores the merged votes of the ARC evaluation at `step` (chief only; atomic; replaces the
        votes of an earlier evaluation of the same step)."""
        if not self.writer:
            return
        path = os.path.join(self.arc_votes(step), ARC_VOTES)
        tf.io.gfile.makedirs(self.arc_votes(step))
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            json.dump(state, f, separators=(",", ":"))  # compact: a full evaluation is tens of MB
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)

    def arc_vote_steps(self) -> list[int]:
        """The steps whose ARC votes are stored, ascending."""
        found = tf.io.gfile.glob(os.path.join(self.file("arc_votes"), "step_*", ARC_VOTES))
        return sorted(int(os.path.basename(os.path.dirname(p))[len("step_") :]) for p in found)

    def read_arc_votes(self, until: int) -> dict[int, dict]:
        """The stored ARC votes of the evaluations at steps <= `until` (what a run resumed from the
        checkpoint of step `until` pools), step -> votes."""
        steps = [s for s in self.arc_vote_steps() if s <= until]
        return {s: read_json(os.path.join(self.arc_votes(s), ARC_VOTES)) for s in steps}

    def drop_arc_votes_after(self, step: int) -> int:
        """Deletes the stored ARC votes of steps after `step` (evaluations a resumed run has not reached
        yet; chief only). Returns how many evaluations were dropped."""
        if not self.writer:
            return 0
        later = [s for s in self.arc_vote_steps() if s > step]
        for s in later:
            tf.io.gfile.rmtree(self.arc_votes(s))
        return len(later)

    # -------------------------------------------------------------- resume
    def truncate_after(self, step: int) -> int:
        """Removes what a previous process logged after `step` (the step a resume restored): metrics.jsonl
        rows, eval_results.json entries and TensorBoard events, so that no step appears twice. Returns the
        number of records removed (chief only; 0 elsewhere)."""
        if not self.writer:
            return 0
        removed = 0
        path = self.file(METRICS)
        if tf.io.gfile.exists(path):
            rows = read_jsonl(path)
            keep = [r for r in rows if int(r.get("step", 0)) <= step]
            if len(keep) < len(rows):
                removed += len(rows) - len(keep)
                tmp = path + ".tmp"
                with tf.io.gfile.GFile(tmp, "w") as f:
                    f.write("".join(json.dumps(r) + "\n" for r in keep))
                tf.io.gfile.rename(tmp, path, overwrite=True)
        results = self.eval_results()
        history = [h for h in results["history"] if int(h.get("step", 0)) <= step]
        if len(history) < len(results["history"]):
            removed += len(results["history"]) - len(history)
            results["history"] = history
            results["latest"] = history[-1] if history else {}
            write_json(self.file(EVAL_RESULTS), results)
        for events in tf.io.gfile.glob(self.file(os.path.join("*", "events.out.tfevents.*"))):
            removed += _truncate_events(events, step)
        return removed

    def check_config(self, config, resuming: bool) -> list[str]:
        """Compares `config` with the run's config.json (read in today's layout) before anything is written.

        On a resume, a change to a state-shaping field (STATE_FIELDS) raises ConfigChangedError naming the
        fields; the other changes are returned (for the log). A workdir without checkpoints takes any config.
        A config.json of an older layout is compared after its upgrade, so a field that only moved (e.g.
        `model.halt_max_steps` -> `act.halt_max_steps`) is no change.
        """
        old = read_json(self.file(CONFIG)) if resuming else None
        if old is None:
            return []
        old = upgrade_config_dict(old)
        new = json.loads(config.to_json_best_effort())
        state, other = config_changes(old, new)
        if state:
            raise ConfigChangedError(
                f"{self.path} holds checkpoints of another model/data/optimizer; changed: "
                f"{'; '.join(state)} (use a new --workdir, or restore these values)"
            )
        return other


# Fields whose change alters the shape or meaning of a checkpoint's state: a resume with a different value
# is refused. Everything else (training length, cadences, evaluation, runtime) may change and is logged.
STATE_FIELDS = (
    "model.",
    "data.name",
    "data.config",
    "optim.name",
    "optim.ema",
    "train.global_batch_size",
)


def config_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
    """(state-shaping changes, other changes) between two configs as "field: old -> new" lines."""
    a, b = flatten_config(old), flatten_config(new)
    state, other = [], []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<unset>") == b.get(key, "<unset>"):
            continue
        line = f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}"
        (state if key.startswith(STATE_FIELDS) else other).append(line)
    return state, other


class ConfigChangedError(ValueError):
    """A resume with a config whose state-shaping fields differ from the run's config.json."""


class WorkdirBusyError(RuntimeError):
    """Another live run holds the workdir's lock."""


def _crc32c_table() -> np.ndarray:
    """The byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_CRC32C = _crc32c_table()


_CRC32C_LIST = _CRC32C.tolist()
# Pieces longer than this are checksummed one by one in Python (about 4 MB/s); shorter ones all at once.
_LONG_PIECE = 2048


def _masked_crc32c_many(data: bytes, starts, ends) -> np.ndarray:
    """The masked CRC-32C (TFRecord's checksum; TF exposes no crc32c to Python) of every `data[s:e]`.

    Short pieces (event records are mostly ~100 bytes) are computed all at once, one vectorised table
    step per byte position over the pieces still that long; long ones byte by byte in Python."""
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(ends, np.int64) - starts
    crc = np.full(len(starts), 0xFFFFFFFF, np.uint32)
    flat = np.frombuffer(data, np.uint8)
    short = np.flatnonzero(lengths <= _LONG_PIECE)
    order = short[np.argsort(-lengths[short], kind="stable")]
    longest_first = lengths[order]
    first, descending, part = starts[order], -longest_first, crc[order]
    for j in range(int(longest_first[0]) if len(order) else 0):
        k = int(np.searchsorted(descending, -j, side="left"))  # the pieces longer than j
        byte = flat[first[:k] + j].astype(np.uint32)
        part[:k] = _CRC32C[(part[:k] ^ byte) & 0xFF] ^ (part[:k] >> 8)
    crc[order] = part
    table = _CRC32C_LIST
    for i in np.flatnonzero(lengths > _LONG_PIECE):
        value = 0xFFFFFFFF
        for byte in data[starts[i] : starts[i] + lengths[i]]:
            value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
        crc[i] = value
    crc ^= np.uint32(0xFFFFFFFF)
    return ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)


def _masked_crc32c(data: bytes) -> int:
    return int(_masked_crc32c_many(data, np.array([0]), np.array([len(data)]))[0])


def _tfrecord(data: bytes) -> bytes:
    """One framed TFRecord: length (u64), its masked crc (u32), the data, the data's masked crc (u32)."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", _masked_crc32c(length))
        + data
        + struct.pack("<I", _masked_crc32c(data))
    )


def _truncate_events(path: str, step: int) -> int:
    """Drops the events after `step` from one TensorBoard event file; returns how many were dropped.

    The TFRecord framing is read and written in Python (one read, and when events are dropped one write
    and one rename): eager tf.data would run on the remote default device of a pod client, two RPCs per
    record. Every record's checksums are verified (all at once, `_masked_crc32c_many`); a torn last
    record (a writer killed mid-write) is dropped, any other damage raises DataLossError naming the file.
    """
    from tensorflow.core.util import event_pb2

    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    spans, pos = [], 0  # (record start, data start, record end)
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        if pos + 16 + n > len(data):
            break
        spans.append((pos, pos + 12, pos + 12 + n))
        pos += 16 + n
    torn = pos < len(data)
    header = data[pos : pos + 8]
    if (
        len(data) >= pos + 12
        and _masked_crc32c(header) != struct.unpack_from("<I", data, pos + 8)[0]
    ):
        raise tf.errors.DataLossError(None, None, f"{path}: corrupt record at byte {pos}")
    if spans:
        at = np.array(spans, np.int64)
        crcs = _masked_crc32c_many(
            data, np.concatenate([at[:, 0], at[:, 1]]), np.concatenate([at[:, 0] + 8, at[:, 2]])
        )
        stored = np.array(
            [struct.unpack_from("<I", data, s[0] + 8)[0] for s in spans]
            + [struct.unpack_from("<I", data, s[2])[0] for s in spans],
            np.uint32,
        )
        bad = np.flatnonzero(crcs != stored)
        if len(bad):
            where = spans[int(bad[0]) % len(spans)][0]
            raise tf.errors.DataLossError(None, None, f"{path}: corrupt record at byte {where}")
    kept, dropped = [], 0
    for start, first, end in spans:
        ev = event_pb2.Event.FromString(data[first:end])
        if ev.step > step and not ev.HasField("file_version"):
            dropped += 1
        else:
            kept.append(data[start : end + 4])
    if torn:
        logging.warning("%s: dropped a torn last record (%d bytes)", path, len(data) - pos)
    if dropped or torn:
        tmp = path + ".tmp"
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(b"".join(kept))
        tf.io.gfile.rename(tmp, path, overwrite=True)
    return dropped


# The owner of a workdir refreshes its lock's heartbeat at least this often (a background thread of the
# run); a lock of another host whose heartbeat is older than LOCK_STALE_AFTER_S is taken over.
HEARTBEAT_EVERY_S = 120
LOCK_STALE_AFTER_S = 600


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def boot_id() -> str | None:
    """This machine's boot id (Linux: a new one at every boot, so also on a recreated VM); None elsewhere."""
    text = _read_text("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def process_start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, `/proc/<pid>/stat` field 22), or None when no
    such process runs (or there is no /proc). Readable for any user's process, unlike `os.kill(pid, 0)`."""
    text = _read_text(f"/proc/{int(pid)}/stat")
    if not text:
        return None
    try:  # the command name (field 2) is in parentheses and may contain spaces: split after its ")"
        return int(text[text.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _pid_exists(pid: int) -> bool:
    """Fallback without /proc: os.kill(pid, 0) (another user's process raises PermissionError: alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunLock:
    """One run per workdir: `run.lock` holds the owner's host, pid, boot id, process start time, start and
    heartbeat times (format: docs/run_directory.md).

    A second run refuses to start (WorkdirBusyError, one line naming the owner) unless the lock is stale:
    * same host, another boot id: the machine rebooted (or was recreated under the same name) -> stale;
    * same host and boot: stale when the owner's pid no longer runs, or runs but started at another time
      than the lock records (the pid was reused, whichever user owns it);
    * another host (e.g. a spot slice recreated under a new hostname): stale when the heartbeat is older
      than `stale_after_s` (LOCK_STALE_AFTER_S; the owner refreshes it every HEARTBEAT_EVERY_S).
    A lock written without boot id / start time (older runs) falls back to `os.kill(pid, 0)`.
    On local paths the lock is created with O_EXCL; on gs:// it is written and read back (GCS has no
    exclusive create through gfile; two runs starting within the same second on the same bucket path could
    both pass — the read-back catches the common case).

    `read_boot_id` and `read_start_time` (pid -> start time or None) default to this machine's /proc;
    tests inject fakes.
    """

    def __init__(
        self,
        path: str,
        stale_after_s: float = LOCK_STALE_AFTER_S,
        read_boot_id: Callable[[], str | None] = boot_id,
        read_start_time: Callable[[int], int | None] = process_start_time,
    ):
        self.path = os.path.join(path, LOCK)
        self.stale_after_s = stale_after_s
        self.read_boot_id = read_boot_id
        self.read_start_time = read_start_time
        self.token = uuid.uuid4().hex
        self.held = False

    def _info(self) -> dict:
        now = time.time()
        pid = os.getpid()
        return {
            "host": socket.gethostname(),
            "pid": pid,
            "boot_id": self.read_boot_id(),
            "pid_start": self.read_start_time(pid),
            "started": now,
            "heartbeat": now,
            "token": self.token,
        }

    def stale_reason(self, info: dict) -> str | None:
        """Why the lock `info` may be taken over, or None while its owner may still run."""
        if info.get("host") == socket.gethostname():
            mine, theirs = self.read_boot_id(), info.get("boot_id")
            if mine and theirs and mine != theirs:
                return "this host rebooted since the lock was written (another boot id)"
            try:
                pid = int(info.get("pid", -1))
            except (TypeError, ValueError):
                return "the lock names no pid"
            if pid <= 0:
                return "the lock names no pid"
            recorded = info.get("pid_start")
            if mine and recorded is not None:
                now = self.read_start_time(pid)
                if (
                    now is None
                ):  # no /proc entry; os.kill confirms (a hidden /proc hides others' pids)
                    return None if _pid_exists(pid) else f"pid {pid} no longer runs"
                if int(now) != int(recorded):
                    return f"pid {pid} now belongs to another process (started at another time)"
                return None
            return None if _pid_exists(pid) else f"pid {pid} no longer runs"
        age = time.time() - float(info.get("heartbeat", 0) or 0)
        if age > self.stale_after_s:
            return f"its heartbeat is {age:.0f} s old (> {self.stale_after_s:g} s)"
        return None

    def stale(self, info: dict) -> bool:
        return self.stale_reason(info) is not None

    def acquire(self) -> None:
        existing = read_json(self.path)
        if existing is not None:
            reason = self.stale_reason(existing)
            if reason is None:
                started = time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.localtime(existing.get("started", 0))
                )
                age = time.time() - float(existing.get("heartbeat", 0) or 0)
                other_host = existing.get("host") != socket.gethostname()
                later = (
                    f"; taken over automatically once its heartbeat ({age:.0f} s ago) is "
                    f"{self.stale_after_s:g} s old"
                    if other_host
                    else ""
                )
                raise WorkdirBusyError(
                    f"{os.path.dirname(self.path)} is in use by pid {existing.get('pid')} on "
                    f"{existing.get('host')} since {started} ({self.path}){later}; wait for it, stop "
                    "it, or use another --workdir (delete the lock only if that run is really gone)"
                )
            logging.info("Taking over %s: %s", self.path, reason)
            tf.io.gfile.remove(self.path)
        tf.io.gfile.makedirs(os.path.dirname(self.path))
        data = json.dumps(self._info())
        if "://" in self.path:
            with tf.io.gfile.GFile(self.path, "w") as f:
                f.write(data)
            time.sleep(1.0)
            if (read_json(self.path) or {}).get("token") != self.token:
                raise WorkdirBusyError(
                    f"{self.path} was taken by another run starting at the same time"
                )
        else:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                raise WorkdirBusyError(
                    f"{self.path} was taken by another run starting at the same time"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(data)
        self.held = True

    def heartbeat(self) -> None:
        if self.held:
            info = read_json(self.path) or {}
            if info.get("token") == self.token:
                write_json(self.path, {**info, "heartbeat": time.time()})

    def release(self) -> None:
        if self.held and (read_json(self.path) or {}).get("token") == self.token:
            tf.io.gfile.remove(self.path)
        self.held = False
