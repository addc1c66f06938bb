"""The run directory: what a resume drops, what a second run meets, what a changed config is told."""

import json
import os
import socket
import struct
import subprocess
import time

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tests.testing import config_files
from tests.testing.launch import REPO, launch_cmd
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import workdir
from trm_tf.analysis import run_config
from trm_tf.summaries import MetricWriter

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _event_steps(path):
    steps = []
    for f in tf.io.gfile.glob(os.path.join(path, "train", "events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(f):
            ev = event_pb2.Event.FromString(raw.numpy())
            if ev.summary.value:
                steps.append(ev.step)
    return sorted(steps)


def test_truncate_after_drops_later_metrics_evals_and_events(tmp_path):
    run = workdir.RunDir(str(tmp_path))
    writer = MetricWriter(run.path)
    for step in (2, 4, 6, 8):
        writer.write("train", step, {"loss": 1.0 / step})
    writer.close()
    for step in (4, 8):
        run.add_eval({"step": step, "exact_accuracy": step / 10})
    assert _event_steps(run.path) == [2, 4, 6, 8]
    removed = run.truncate_after(4)
    assert removed == 2 + 1 + 2  # metrics rows, eval entry, events
    rows = workdir.read_jsonl(run.file(workdir.METRICS))
    assert [r["step"] for r in rows] == [2, 4]
    assert [h["step"] for h in run.eval_results()["history"]] == [4]
    assert run.eval_results()["latest"]["step"] == 4
    assert _event_steps(run.path) == [2, 4]
    assert run.truncate_after(4) == 0


def _truncate_with_tf_data(path, step):
    """Today's main's `_truncate_events` (eager tf.data), the reference of the Python reader."""
    kept, dropped = [], 0
    for raw in tf.data.TFRecordDataset(path):
        ev = event_pb2.Event.FromString(raw.numpy())
        if ev.step > step and not ev.HasField("file_version"):
            dropped += 1
        else:
            kept.append(raw.numpy())
    if dropped:
        with tf.io.TFRecordWriter(path + ".tmp") as w:
            for r in kept:
                w.write(r)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return dropped


def _real_event_file(directory):
    """A TensorBoard event file with scalars, a histogram and text at steps 1..12 (and a graph-less
    file_version record), written by tf.summary."""
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        for step in range(1, 13):
            tf.summary.scalar("loss", 1.0 / step, step=step)
            tf.summary.histogram("w", tf.random.stateless_normal([50], seed=[step, 0]), step=step)
            tf.summary.text("note", f"step {step}", step=step)
    writer.close()
    (path,) = tf.io.gfile.glob(os.path.join(str(directory), "events.out.tfevents.*"))
    return path


@pytest.mark.parametrize("step", [0, 5, 12])
def test_python_truncation_is_byte_equal_to_tf_data(tmp_path, step):
    path = _real_event_file(tmp_path / "events")
    original = open(path, "rb").read()
    want_dropped = _truncate_with_tf_data(path, step)
    want = open(path, "rb").read()
    open(path, "wb").write(original)
    calls = []
    real_gfile = tf.io.gfile.GFile

    def counted(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("mode"))
        return real_gfile(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf.io.gfile, "GFile", counted)
        assert workdir._truncate_events(path, step) == want_dropped == 3 * (12 - step)
    assert open(path, "rb").read() == want
    assert calls == (["rb", "wb"] if want_dropped else ["rb"])  # one read (+ one write)


def test_crc32c_check_value():
    assert workdir._masked_crc32c(b"") == 0xA282EAD8  # CRC-32C("") = 0, masked
    crc = 0xE3069283  # CRC-32C's check value: crc32c(b"123456789")
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert workdir._masked_crc32c(b"123456789") == masked


def test_tfrecord_framing_equals_tfs(tmp_path):
    records = [b"", b"x", bytes(range(256)) * 9]
    path = str(tmp_path / "r.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)
    assert open(path, "rb").read() == b"".join(workdir._tfrecord(r) for r in records)


def test_checksums_of_many_records_at_once_equal_tfs(tmp_path):
    rng = np.random.default_rng(0)
    records = [rng.bytes(int(n)) for n in rng.integers(0, 3000, 200)]  # short and long (> 2048)
    path = str(tmp_path / "r.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)
    data = open(path, "rb").read()
    starts = np.cumsum([0] + [16 + len(r) for r in records[:-1]]) + 12
    ends = starts + [len(r) for r in records]
    stored = [struct.unpack_from("<I", data, e)[0] for e in ends]
    np.testing.assert_array_equal(workdir._masked_crc32c_many(data, starts, ends), stored)


def test_torn_last_record_is_dropped_and_damage_raises(tmp_path):
    path = _real_event_file(tmp_path / "events")
    whole = open(path, "rb").read()
    open(path, "wb").write(whole[:-7])  # a writer killed mid-record
    assert workdir._truncate_events(path, 12) == 0
    fixed = open(path, "rb").read()
    assert whole.startswith(fixed) and len(fixed) < len(whole) - 7
    assert workdir._truncate_events(path, 12) == 0 and open(path, "rb").read() == fixed
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0xFF
    open(path, "wb").write(bytes(damaged))
    with pytest.raises(tf.errors.DataLossError, match="corrupt record"):
        workdir._truncate_events(path, 5)
    assert open(path, "rb").read() == bytes(damaged)  # nothing rewritten


def test_config_changes_split_state_from_schedule(tmp_path):
    old = {"model": {"hidden_size": 32, "L_layers": 2}, "train": {"total_steps": 8}, "seed": 0}
    new = {"model": {"hidden_size": 48, "L_layers": 2}, "train": {"total_steps": 16}, "seed": 0}
    state, other = workdir.config_changes(old, new)
    assert state == ["model.hidden_size: 32 -> 48"] and other == ["train.total_steps: 8 -> 16"]
    run = workdir.RunDir(str(tmp_path))
    run.write_config(ml_collections.ConfigDict(old))
    assert json.load(open(run.file(workdir.CONFIG)))["model"]["hidden_size"] == 32
    with pytest.raises(workdir.ConfigChangedError, match="model.hidden_size: 32 -> 48"):
        run.check_config(ml_collections.ConfigDict(new), resuming=True)
    assert run.check_config(ml_collections.ConfigDict(new), resuming=False) == []


@pytest.mark.parametrize(
    "run, config_arg",
    [
        ("contrib02_adaptive_halting", "configs/contrib02_adaptive_halting.py"),
        ("baseline_hrm", "configs/baselines.py:hrm"),
    ],
)
def test_run_directory_of_the_first_config_layout_resumes(run, config_arg, tmp_path):
    """A run directory whose config.json predates the `act` section (committed fixture: ACT fields under
    `model`, -1 sentinels) reads in today's layout, and today's config of the same run resumes it without
    a change; a model change is still refused, and a moved field is compared at its new place."""
    fixture = os.path.join(FIXTURES, "config_v1", run, workdir.CONFIG)
    old = json.load(open(fixture))
    assert old["model"]["halt_max_steps"] == 16 and "act" not in old  # really the old layout
    os.makedirs(tmp_path / "run")
    with open(tmp_path / "run" / workdir.CONFIG, "w") as f:
        json.dump(old, f)
    rundir = workdir.RunDir(str(tmp_path / "run"))
    today = config_files.load(config_arg)
    assert rundir.read_config().to_dict() == json.loads(today.to_json_best_effort())
    assert rundir.check_config(today, resuming=True) == []
    today.unlock()
    today.act.halt_max_steps = 8  # allowed on a resume, and reported at its new place
    assert rundir.check_config(today, resuming=True) == ["act.halt_max_steps: 16 -> 8"]
    layers = old["model"]["L_layers"]
    today.model.L_layers = layers + 1
    with pytest.raises(
        workdir.ConfigChangedError, match=rf"changed: model\.L_layers: {layers} -> {layers + 1} \("
    ):
        rundir.check_config(today, resuming=True)


def _first_layout(config: dict) -> dict:
    """A config.json of today as launch.py wrote it before the `act` section (tests/fixtures/config_v1):
    moved fields at their old places, -1 for "derived", the fields added or derived since left out."""
    old_key = {new: old for old, new in run_config.OLD_TO_NEW_KEYS.items()}
    flat = {}
    for key, value in run_config.flatten_config(config).items():
        if key in ("act.q_continue_target", "act.halt_rule"):
            continue
        if key in run_config.ADDED_DEFAULTS and value == run_config.ADDED_DEFAULTS[key]:
            continue
        if value is None and key in run_config.OLD_SENTINELS:
            value = -1
        flat[old_key.get(key, key)] = value
    flat.update(dict.fromkeys(run_config.REMOVED_KEYS, False))
    return run_config.unflatten_config(flat)


@pytest.mark.slow  # three launch.py runs
def test_launch_resumes_a_run_directory_of_the_first_config_layout(tmp_path):
    """A run whose config.json has the first layout (as a run directory trained before the `act` section
    holds) resumes from its checkpoint and rewrites the file in today's layout; a model change is still
    refused in one line."""
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    run = str(tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=REPO)

    def launch(*extra):
        cmd = launch_cmd(data_dir, run, "--mode=train", *extra)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)

    out = launch("--config.train.total_steps=4")
    assert out.returncode == 0, out.stderr[-3000:]
    path = os.path.join(run, workdir.CONFIG)
    today = json.load(open(path))
    old = _first_layout(today)
    assert "act" not in old and old["model"]["halt_max_steps"] == 3  # the first layout
    assert run_config.upgrade_config_dict(old) == today
    with open(path, "w") as f:
        json.dump(old, f)

    out = launch("--config.train.total_steps=8")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(step 4)" in next(x for x in out.stderr.splitlines() if "Restored " in x)
    assert "Config change on resume (allowed): train.total_steps: 4 -> 8" in out.stderr
    assert json.load(open(os.path.join(run, workdir.SUMMARY)))["step"] == 8
    assert json.load(open(path)) == {**today, "train": {**today["train"], "total_steps": 8}}

    out = launch("--config.train.total_steps=12", "--config.model.hidden_size=48")
    assert out.returncode == 1
    assert "changed: model.hidden_size: 32 -> 48 (use a new --workdir" in out.stderr
    assert json.load(open(os.path.join(run, workdir.SUMMARY)))["step"] == 8


@pytest.mark.parametrize("target, rule", [(True, "q_halt_vs_continue"), (False, "q_halt")])
def test_config_of_an_act_section_without_halt_rule_reads_with_its_rule(target, rule, tmp_path):
    """Configs written between the `act` section and `act.halt_rule` halted by the comparison with
    q_continue exactly when they learnt a q_continue target."""
    with open(tmp_path / workdir.CONFIG, "w") as f:
        json.dump({"act": {"q_continue_target": target}}, f)
    assert workdir.RunDir(str(tmp_path)).read_config().act.to_dict() == {
        "q_continue_target": target,
        "halt_rule": rule,
    }


def test_lock_refuses_a_live_owner_and_takes_a_stale_one(tmp_path):
    first = workdir.RunLock(str(tmp_path))
    first.acquire()
    with pytest.raises(workdir.WorkdirBusyError, match=f"pid {os.getpid()}"):
        workdir.RunLock(str(tmp_path)).acquire()
    first.release()
    assert not os.path.exists(os.path.join(tmp_path, workdir.LOCK))
    stale = {"host": "elsewhere", "pid": 1, "started": 0, "heartbeat": 0, "token": "x"}
    with open(os.path.join(tmp_path, workdir.LOCK), "w") as f:
        json.dump(stale, f)
    second = workdir.RunLock(str(tmp_path), stale_after_s=60)
    second.acquire()  # another host's lock without a heartbeat for an hour: taken over
    assert json.load(open(os.path.join(tmp_path, workdir.LOCK)))["pid"] == os.getpid()
    second.release()


def _write_lock(tmp_path, **fields) -> None:
    info = {"host": socket.gethostname(), "pid": 4242, "started": 0, "token": "theirs"}
    info.update(fields)
    with open(os.path.join(tmp_path, workdir.LOCK), "w") as f:
        json.dump(info, f)


def _fake_lock(tmp_path, boot="boot-A", running=None):
    """A RunLock whose /proc readers are fakes: this boot id, and pid -> start time of running pids."""
    running = dict(running or {})
    running.setdefault(os.getpid(), 1000)
    return workdir.RunLock(
        str(tmp_path), read_boot_id=lambda: boot, read_start_time=lambda pid: running.get(pid)
    )


def test_lock_records_boot_id_and_the_owner_start_time(tmp_path):
    lock = _fake_lock(tmp_path, boot="boot-A", running={os.getpid(): 777})
    lock.acquire()
    info = json.load(open(os.path.join(tmp_path, workdir.LOCK)))
    assert (info["boot_id"], info["pid_start"], info["pid"]) == ("boot-A", 777, os.getpid())
    lock.release()
    # The real /proc readers on this machine: the boot id and our own start time are recorded.
    real = workdir.RunLock(str(tmp_path))
    real.acquire()
    info = json.load(open(os.path.join(tmp_path, workdir.LOCK)))
    if os.path.exists("/proc/sys/kernel/random/boot_id"):
        assert info["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
        assert info["pid_start"] == workdir.process_start_time(os.getpid()) > 0
    real.release()


def test_lock_of_a_previous_boot_on_this_host_is_stale(tmp_path):
    # Same host name, pid running (even with the same start time), but the machine booted again.
    _write_lock(tmp_path, boot_id="boot-OLD", pid_start=50, heartbeat=time.time())
    lock = _fake_lock(tmp_path, boot="boot-NEW", running={4242: 50})
    assert "rebooted" in lock.stale_reason(json.load(open(lock.path)))
    lock.acquire()
    assert json.load(open(lock.path))["token"] == lock.token
    lock.release()


def test_lock_of_a_reused_pid_is_stale_and_a_live_owner_is_not(tmp_path):
    _write_lock(tmp_path, boot_id="boot-A", pid_start=50, heartbeat=time.time())
    # pid 4242 runs, but started at another time: another process (of any user) reused the pid.
    reused = _fake_lock(tmp_path, boot="boot-A", running={4242: 9999})
    assert "another process" in reused.stale_reason(json.load(open(reused.path)))
    # pid 4242 runs with the recorded start time: the owner is alive, the lock is refused.
    alive = _fake_lock(tmp_path, boot="boot-A", running={4242: 50})
    assert alive.stale_reason(json.load(open(alive.path))) is None
    with pytest.raises(workdir.WorkdirBusyError, match="in use by pid 4242"):
        alive.acquire()
    reused.acquire()
    assert json.load(open(reused.path))["pid"] == os.getpid()
    reused.release()


def test_lock_of_a_reused_pid_of_another_user_is_stale(tmp_path, monkeypatch):
    # pid 1 always runs, as root: os.kill(1, 0) raises PermissionError for a normal user (forced here,
    # whoever runs the test), which the old lock counted as alive. The recorded start time decides now.
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", kill)
    _write_lock(tmp_path, pid=1, boot_id="boot-A", pid_start=123456789, heartbeat=time.time())
    lock = workdir.RunLock(str(tmp_path), read_boot_id=lambda: "boot-A")
    assert workdir.process_start_time(1) is None or workdir.process_start_time(1) != 123456789
    assert lock.stale(json.load(open(lock.path)))
    monkeypatch.undo()
    # A dead pid with no /proc entry is stale too.
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_lock(tmp_path, pid=dead.pid, boot_id="boot-A", pid_start=5, heartbeat=time.time())
    gone = _fake_lock(tmp_path, boot="boot-A")
    assert "no longer runs" in gone.stale_reason(json.load(open(gone.path)))


def test_lock_of_another_host_is_stale_after_the_default_600_s_without_heartbeat(tmp_path):
    assert workdir.LOCK_STALE_AFTER_S == 600 and workdir.HEARTBEAT_EVERY_S == 120
    assert workdir.LOCK_STALE_AFTER_S >= 4 * workdir.HEARTBEAT_EVERY_S
    # A spot slice recreated under a new hostname: the old host's lock, last heartbeat 11 min ago.
    _write_lock(tmp_path, host="t1v-old-w-0", boot_id="x", pid_start=1, heartbeat=time.time() - 660)
    lock = _fake_lock(tmp_path)
    assert lock.stale_after_s == 600
    assert "heartbeat is 660 s old" in lock.stale_reason(json.load(open(lock.path)))
    lock.acquire()
    lock.release()
    # 5 min ago: still alive; the refusal says when it will be taken over.
    _write_lock(tmp_path, host="t1v-old-w-0", boot_id="x", pid_start=1, heartbeat=time.time() - 300)
    with pytest.raises(
        workdir.WorkdirBusyError, match="taken over automatically once its heartbeat"
    ):
        _fake_lock(tmp_path).acquire()


def test_lock_heartbeat_refreshes_only_the_owners_lock(tmp_path):
    lock = _fake_lock(tmp_path)
    lock.acquire()
    before = json.load(open(lock.path))["heartbeat"]
    time.sleep(0.01)
    lock.heartbeat()
    assert json.load(open(lock.path))["heartbeat"] > before
    _write_lock(tmp_path, heartbeat=1.0)  # taken over by someone else: left alone
    lock.heartbeat()
    assert json.load(open(lock.path))["heartbeat"] == 1.0
    lock.release()
    assert os.path.exists(lock.path)  # not ours: not deleted


def _count_opens(monkeypatch):
    """Records (basename, mode) of every tf.io.gfile.GFile opened."""
    opened = []
    real = tf.io.gfile.GFile

    def gfile(path, mode="r"):
        opened.append((os.path.basename(path), mode))
        return real(path, mode)

    monkeypatch.setattr(tf.io.gfile, "GFile", gfile)
    return opened


def test_summary_is_read_once_and_background_updates_keep_only_the_newest(tmp_path, monkeypatch):
    from trm_tf.background import BackgroundWriter

    with open(tmp_path / workdir.SUMMARY, "w") as f:
        json.dump({"status": "preempted", "step": 4}, f)
    run = workdir.RunDir(str(tmp_path))
    opened = _count_opens(monkeypatch)
    for step in (5, 6, 7):
        run.update_summary(status="running", step=step)
    assert run.summary() == {"status": "running", "step": 7}
    assert opened.count((workdir.SUMMARY, "r")) == 1
    writes = []
    run.background = bw = BackgroundWriter()
    monkeypatch.setattr(workdir, "write_json", lambda path, obj: writes.append(obj))
    gate = __import__("threading").Event()
    bw.submit(lambda: gate.wait(10))
    for step in (8, 9, 10):
        run.update_summary(step=step)
    gate.set()
    bw.close()
    assert writes == [{"status": "running", "step": 10}]  # coalesced to the newest content


def test_metrics_jsonl_on_an_object_store_is_read_once_and_rewritten_whole(monkeypatch):
    root = "ram://trm_workdir_test"
    tf.io.gfile.makedirs(root)
    with tf.io.gfile.GFile(root + "/" + workdir.METRICS, "w") as f:
        f.write(json.dumps({"split": "train", "step": 1, "loss": 2.0}) + "\n")
    writer = MetricWriter(root)
    real_gfile = tf.io.gfile.GFile

    def truncating(path, mode="r"):  # as on gs:// ("w" replaces the object; ram:// appends)
        if mode == "w" and tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
        return real_gfile(path, mode)

    monkeypatch.setattr(tf.io.gfile, "GFile", truncating)
    opened = _count_opens(monkeypatch)
    for step in (2, 3, 4):
        writer.write("train", step, {"loss": 1.0 / step})
    writer.close()
    assert opened.count((workdir.METRICS, "r")) == 1
    assert opened.count((workdir.METRICS, "w")) == 3
    rows = workdir.read_jsonl(root + "/" + workdir.METRICS)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[-1]["loss"] == 0.25


def test_events_are_scalars_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    writer = MetricWriter(str(tmp_path))
    writer.write("train", 3, {"loss": 0.5, "goodput/training_share": 0.75})
    writer.write("train", 6, {"loss": 0.25}, jsonl=False)
    writer.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    acc.Reload()
    loss = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors("loss")]
    assert loss == [(3, 0.5), (6, 0.25)]
    assert acc.Tensors("goodput/training_share")[0].step == 3
    rows = workdir.read_jsonl(str(tmp_path / workdir.METRICS))
    assert [r["step"] for r in rows] == [3]  # jsonl=False: TensorBoard only
