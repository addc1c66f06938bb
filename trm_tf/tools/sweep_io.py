"""File access and child processes of the batch runner `sweep.py`.

Local paths go through the OS and URLs (gs://...) through tf.io.gfile, imported only when a URL is
used, so `sweep.py --list` never imports TensorFlow. (JSON files are read by `trm_tf.workdir.read_json`,
which `sweep.py` imports when it first looks at a run directory.) `launch` runs one child with stdin
closed, streams its merged output to the console and to a log file (kept in a temporary file and
re-uploaded periodically when the log lives at a URL), and stops the child's process group on Ctrl-C.
"""

from __future__ import annotations

import datetime
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# How often a remote (gs://) log is re-uploaded while its run streams output.
REMOTE_LOG_UPLOAD_S = 60.0


def is_url(path: str) -> bool:
    return "://" in path


def join(root: str, *parts: str) -> str:
    """Joins path parts, keeping '/' for URLs."""
    return "/".join([root.rstrip("/"), *parts]) if is_url(root) else os.path.join(root, *parts)


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if is_url(path):
        import tensorflow as tf  # noqa: PLC0415  (only for gs:// roots)

        try:
            if not tf.io.gfile.exists(path):
                return None
            with tf.io.gfile.GFile(path) as f:
                return f.read()
        except tf.errors.OpError as e:  # unreachable bucket: treat as missing, say so
            print(f"warning: cannot read {path}: {e.message}", file=sys.stderr)
            return None
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return None


def write_text(path: str, text: str) -> None:
    """Writes a whole file (temp file + rename where the filesystem allows it)."""
    if is_url(path):
        import tensorflow as tf  # noqa: PLC0415

        tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, path)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class _Log:
    """launch.log of one run: appended locally; for URLs kept in a temp file and uploaded."""

    def __init__(self, path: str):
        self.path = path
        self.remote = is_url(path)
        if self.remote:
            fd, self.local = tempfile.mkstemp(suffix=".log")
            os.close(fd)
            Path(self.local).write_text(read_text(path) or "")  # keep earlier launches' output
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.local = path
        self.f = open(self.local, "a")  # noqa: SIM115  (closed in close())
        self.last_upload = time.monotonic()

    def write(self, text: str) -> None:
        self.f.write(text)
        self.f.flush()
        if self.remote and time.monotonic() - self.last_upload > REMOTE_LOG_UPLOAD_S:
            self.upload()

    def upload(self) -> None:
        if self.remote:
            write_text(self.path, Path(self.local).read_text())
            self.last_upload = time.monotonic()

    def close(self) -> None:
        self.f.close()
        if self.remote:
            self.upload()
            os.unlink(self.local)


def launch(cmd: list[str], log_path: str, prefix: str, out=None, cwd=None) -> int:
    """Runs `cmd` in `cwd`, streaming its merged output to `out` and the log.

    Stdin is closed so that nothing can wait for an answer. On KeyboardInterrupt the child's process
    group gets SIGTERM (the trainer checkpoints nothing extra; the next sweep resumes it) and the
    interrupt is re-raised.

    Returns:
      The child's exit code.
    """
    out = out or sys.stdout
    log = _Log(log_path)
    log.write(f"=== {now()} sweep.py: {shlex.join(cmd)}\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so Ctrl-C handling reaches all of it
        )
    except OSError as e:
        log.write(f"=== launch failed: {e}\n")
        log.close()
        print(f"[{prefix}] launch failed: {e}", file=out, flush=True)
        return 127
    try:
        for line in proc.stdout:
            log.write(line)
            out.write(f"[{prefix}] {line}")
            out.flush()
        rc = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        log.write(f"=== {now()} interrupted\n")
        log.close()
        raise
    log.write(f"=== {now()} exit code {rc}\n")
    log.close()
    return rc
