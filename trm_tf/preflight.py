"""`launch.py --preflight`: the checks a researcher runs first on a new TPU slice (about two minutes).

Each check prints one line, `[ok]` or `[FAIL]` with what to do, and the command exits 0 only when all pass:

1. versions   — TensorFlow has the minor version the project pins; on a single-host TPU VM, `libtpu`
                satisfies what the installed `tensorflow-tpu` declares; with remote TPU hosts, their
                runtime version (gcloud describe of the slice named in the TPU VM metadata) has the
                client's TensorFlow minor version;
2. hosts      — every TPU host / worker answered (the strategy was built within runtime.peer_timeout_s);
3. storage    — the client reads the dataset's metadata and writes + reads + deletes a file in the workdir,
                and so does every host, with ops placed on each host's CPU (what tf.data, checkpoint
                SaveV2/RestoreV2 and summary writes do on a pod);
4. memory     — the per-chip estimate fits `runtime.hbm_gib` (trm_tf.memory);
5. train step — one compiled training step runs and gives a finite loss;
6. eval step  — one evaluation batch runs;
7. checkpoint — a checkpoint with the ACT carry (in the run's forward dtype, bfloat16 on TPU) saves to
                `<workdir>/preflight/` and restores bit for bit, then the folder is deleted.

The same command on CPU runs against the pod rehearsal (several logical CPUs, one input pipeline each:
`--config.runtime.num_logical_cpus=N --config.runtime.input_pipelines=per_replica`), which is its test.
Nothing of the run's own checkpoints or logs is touched.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import time
import uuid
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from trm_tf import distribute

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Check:
    """One named preflight check; `run()` records ok / message and the time it took."""

    def __init__(self, name: str, fn: Callable[[], str]):
        self.name, self.fn = name, fn
        self.ok, self.message, self.seconds = False, "", 0.0

    def run(self) -> bool:
        t0 = time.perf_counter()
        try:
            self.message = self.fn() or ""
            self.ok = True
        except Exception as e:  # every failure becomes one line
            text = " ".join(x.strip() for x in str(e).strip().splitlines())[:500]
            self.message = f"{type(e).__name__}: {text}" if text else type(e).__name__
            self.ok = False
        self.seconds = time.perf_counter() - t0
        return self.ok

    def line(self) -> str:
        return (
            f"[{'ok' if self.ok else 'FAIL'}] {self.name:<10} {self.message} ({self.seconds:.1f} s)"
        )


def pinned_tf_version(requirements: str | None = None) -> str | None:
    """The TensorFlow version requirements.txt pins (`tensorflow-cpu==X` or `tensorflow-tpu==X`)."""
    path = requirements or os.path.join(REPO_ROOT, "requirements.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*tensorflow(?:-cpu|-tpu)?==([0-9.]+)", line)
            if m:
                return m.group(1)
    return None


# The TPU VM's own description (on every host of a slice, so on worker 0 where the client runs).
TPU_ENV_URL = "http://metadata.google.internal/computeMetadata/v1/instance/attributes/tpu-env"


def tpu_vm_env(timeout: float = 2.0) -> dict[str, str]:
    """The `tpu-env` metadata of this TPU VM (NODE_ID, ZONE, ACCELERATOR_TYPE, RUNTIME_VERSION, ...), or
    {} when this machine is not a TPU VM (no metadata server)."""
    import urllib.request

    req = urllib.request.Request(TPU_ENV_URL, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return {}
    return dict(re.findall(r"^([A-Z0-9_]+):\s*'?(.*?)'?\s*$", text, flags=re.M))


def describe_runtime_version(name: str, zone: str, timeout: float = 60.0) -> str | None:
    """`gcloud compute tpus tpu-vm describe NAME --zone=ZONE --format=value(runtimeVersion)` (as the scripts
    ask), or None when gcloud is missing or fails."""
    import subprocess

    cmd = ["gcloud", "compute", "tpus", "tpu-vm", "describe", name, f"--zone={zone}"]
    cmd.append("--format=value(runtimeVersion)")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def runtime_tf_version(runtime_version: str) -> str | None:
    """The TensorFlow minor version of a TPU runtime image ("tpu-vm-tf-2.20.0-pod-pjrt" -> "2.20"), or
    None for an image without a TensorFlow TPU runtime (e.g. "tpu-ubuntu2204-base")."""
    m = re.search(r"(?:^|[-_/:])tf-(\d+\.\d+)(?:\.\d+)?", runtime_version or "")
    return m.group(1) if m else None


def hosts_runtime_version(
    tpu: str,
    env: Callable[[], dict[str, str]] = tpu_vm_env,
    describe: Callable[[str, str], str | None] = describe_runtime_version,
) -> tuple[str, str]:
    """(runtime version, where it was read) of the TPU hosts the client drives.

    TensorFlow cannot tell: no op reports the build of the process it runs in, and what a remote host
    sends when the client connects (its device list) carries no version. So it is read the way the scripts
    read it: the slice's own name and zone from the TPU VM metadata (the client runs on worker 0), then
    `gcloud … describe … --format=value(runtimeVersion)`; the metadata's RUNTIME_VERSION when gcloud
    cannot answer. Raises RuntimeError (one line) when neither says.
    """
    meta = env()
    name = tpu.strip() if "://" not in tpu and "," not in tpu else meta.get("NODE_ID", "")
    zone = meta.get("ZONE", "")
    if name and zone:
        version = describe(name, zone)
        if version:
            return version, f"gcloud describe {name}"
    if meta.get("RUNTIME_VERSION"):
        return meta["RUNTIME_VERSION"], "TPU VM metadata"
    raise RuntimeError(
        "cannot tell which TensorFlow the TPU hosts run (no TPU VM metadata here: run the client on "
        "worker 0 of the slice); check it with: gcloud compute tpus tpu-vm describe NAME --zone=ZONE "
        "--format='value(runtimeVersion)'"
    )


def check_versions(
    on_tpu: bool,
    tpu: str = "",
    env: Callable[[], dict[str, str]] = tpu_vm_env,
    describe: Callable[[str, str], str | None] = describe_runtime_version,
) -> str:
    """The client's TensorFlow against the pinned version; on a single-host TPU VM (`--tpu=local`) the
    client's `libtpu` against what `tensorflow-tpu` declares; with remote TPU hosts (the client never
    loads libtpu) the hosts' runtime version against the client's TensorFlow minor version."""
    pinned = pinned_tf_version()
    have = tf.__version__
    if pinned and have.split(".")[:2] != pinned.split(".")[:2]:
        raise RuntimeError(
            f"TensorFlow {have} but the project pins {pinned}: "
            f"pip install tensorflow-{'tpu' if on_tpu else 'cpu'}=={pinned}"
        )
    parts = [f"TF {have} (pinned {pinned or '?'})"]
    if on_tpu and distribute.drives_remote_hosts(tpu):
        runtime, source = hosts_runtime_version(tpu, env, describe)
        minor = ".".join(have.split(".")[:2])
        want = f"tpu-vm-tf-{pinned or have}-pod-pjrt"
        hosts_tf = runtime_tf_version(runtime)
        if hosts_tf is None:
            raise RuntimeError(
                f"the client runs TF {have} but the TPU hosts run {runtime} ({source}), which has no "
                f"TensorFlow TPU runtime: recreate the slice with --version={want}"
            )
        if hosts_tf != minor:
            raise RuntimeError(
                f"the client runs TF {have} but the TPU hosts run {runtime} (TF {hosts_tf}, {source}): "
                f"recreate the slice with --version={want} (scripts/create_tpu.sh)"
            )
        parts.append(f"hosts run {runtime} (TF {hosts_tf}, {source})")
    elif on_tpu:
        try:
            libtpu = importlib.metadata.version("libtpu")
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError("libtpu is not installed: pip install tensorflow-tpu") from None
        need = [
            r
            for r in (importlib.metadata.requires("tensorflow-tpu") or [])
            if r.startswith("libtpu")
        ]
        if need:
            from packaging.requirements import Requirement

            req = Requirement(need[0].split(";")[0])
            if libtpu not in req.specifier:
                raise RuntimeError(
                    f"libtpu {libtpu} does not satisfy tensorflow-tpu's {req}: "
                    f'pip install "{req}" (or reinstall tensorflow-tpu=={have})'
                )
        parts.append(f"libtpu {libtpu}")
    return ", ".join(parts)


def host_cpu_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """One CPU device per host that runs replicas (the hosts of a TPU slice, or this machine)."""
    hosts = []
    for d in distribute.worker_devices(strategy):
        spec = tf.DeviceSpec.from_string(d)
        cpu = spec.replace(device_type="CPU", device_index=0).to_string()
        if cpu not in hosts:
            hosts.append(cpu)
    return hosts


def check_storage(strategy, workdir: str, spec) -> str:
    """The client and every host read the dataset and write, read and delete a probe in the workdir."""
    from trm_tf.data import datasets

    info_dir = datasets.tfds_builder(spec.name, spec.data_dir).data_dir
    info_file = os.path.join(info_dir, "dataset_info.json")
    probe_dir = os.path.join(workdir, "preflight")
    tf.io.gfile.makedirs(probe_dir)
    token = uuid.uuid4().hex
    client = os.path.join(probe_dir, f"client-{token}.txt")
    with tf.io.gfile.GFile(client, "w") as f:
        f.write(token)
    with tf.io.gfile.GFile(client) as f:
        if f.read() != token:
            raise RuntimeError(f"{client} read back differently")
    tf.io.gfile.remove(client)
    with tf.io.gfile.GFile(info_file) as f:
        f.read(64)
    hosts = host_cpu_devices(strategy)
    for i, device in enumerate(hosts):
        path = os.path.join(probe_dir, f"host{i}-{token}.txt")
        try:
            with tf.device(device):
                tf.io.write_file(path, token)
                back = tf.io.read_file(path)
                tf.io.read_file(info_file)
        except tf.errors.OpError as e:
            raise RuntimeError(
                f"host {device} cannot use {workdir} or {info_dir} ({e.message.splitlines()[0]}); "
                "grant the TPU VMs' service account read/write on the bucket"
            ) from None
        if back.numpy().decode() != token:
            raise RuntimeError(f"host {device} read {path} back differently")
        tf.io.gfile.remove(path)
    return f"client and {len(hosts)} host(s) read {spec.name} and write {workdir}"


def check_train_step(trainer, strategy, spec, config, options) -> str:
    from trm_tf.data import input_pipeline

    dist = input_pipeline.distribute_train(
        strategy,
        spec,
        trainer.global_batch,
        config.seed,
        0,
        2,
        config.data.host_sharding,
        options=options,
    )
    t0 = time.perf_counter()
    trainer.reset_metrics()
    trainer.train_loop(iter(dist), 1)
    metrics = trainer.read_metrics(1)
    if not math.isfinite(metrics["loss"]):
        raise FloatingPointError(f"the first step's loss is {metrics['loss']}")
    return (
        f"loss {metrics['loss']:.4f} after one step of {trainer.num_replicas} x "
        f"{trainer.per_replica_batch} (trace + compile + run {time.perf_counter() - t0:.1f} s)"
    )


def check_eval_step(trainer, strategy, spec, config, options) -> str:
    from trm_tf import evaluators
    from trm_tf.data import eval_input

    used = evaluators.from_config(config, spec, trainer.eval_halt_max_steps)
    dist, _ = eval_input.distribute_eval(
        strategy,
        spec,
        config.eval.global_batch_size,
        config.eval.global_batch_size,
        extra_features=evaluators.device_features(used),
        task_names=evaluators.task_names(used),
        options=options,
    )
    metrics = trainer.evaluate(dist, 1, use_ema=bool(config.eval.use_ema), evaluators=used)
    if "num_examples" not in metrics:  # no accuracy evaluator in eval.evaluators
        return f"{len(metrics)} metrics of {', '.join(e.name for e in used)}"
    return f"{int(metrics['num_examples'])} examples, exact {metrics.get('exact_accuracy', 0):.3f}"


def check_checkpoint(trainer, workdir: str, chief: bool, worker: int) -> str:
    from trm_tf.checkpointing import CheckpointIO

    pre = os.path.join(workdir, "preflight", f"ckpt-{uuid.uuid4().hex[:8]}")
    io = CheckpointIO(trainer, pre, 1, chief, worker)
    step = int(trainer.step.numpy())
    saved = trainer.carry.local_values(trainer.strategy)
    io.save(step)
    # Scramble the live carry, then restore: the values must come back bit for bit.
    trainer.carry.load_local_values(
        trainer.strategy, {k: np.zeros_like(v) for k, v in saved.items()}
    )
    io.restore_latest()
    back = trainer.carry.local_values(trainer.strategy)
    for k, v in saved.items():
        if back[k].dtype != v.dtype or not np.array_equal(back[k].view(np.uint8), v.view(np.uint8)):
            raise RuntimeError(
                f"carry {k!r} did not restore exactly ({v.dtype} -> {back[k].dtype})"
            )
    if chief:
        tf.io.gfile.rmtree(pre)
    dtype = saved["z_H"].dtype
    return f"saved and restored step {step} with its {dtype} carry"


def run(config, workdir: str, strategy, tpu: str, strategy_seconds: float) -> bool:
    """Runs every check in order, logs one line each, and returns True when all passed."""
    from trm_tf.data import datasets, records
    from trm_tf.trainer import Trainer

    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    chief = distribute.is_chief(strategy)
    worker = distribute.worker_index(strategy)
    options = records.input_options(config.runtime.input_pipelines)
    state: dict = {}

    def dataset_and_storage():
        d = config.data
        state["spec"] = datasets.load_spec(f"{d.name}/{d.config}", d.data_dir)
        return check_storage(strategy, workdir, state["spec"])

    def trainer():
        t = Trainer(config, strategy, state["spec"], total_steps=config.train.total_steps or 1)
        state["trainer"] = t
        return check_train_step(t, strategy, state["spec"], config, options)

    checks = [
        Check("versions", lambda: check_versions(on_tpu, tpu)),
        Check("hosts", lambda: _hosts_line(strategy, strategy_seconds)),
        Check("storage", dataset_and_storage),
        Check("memory", lambda: check_memory(config, strategy, state["spec"], on_tpu)),
        Check("train step", trainer),
        Check(
            "eval step",
            lambda: check_eval_step(state["trainer"], strategy, state["spec"], config, options),
        ),
        Check("checkpoint", lambda: check_checkpoint(state["trainer"], workdir, chief, worker)),
    ]
    ok = _run_checks(checks, state)
    print(f"preflight {'PASSED' if ok else 'FAILED'} for {workdir} ({tpu or 'no TPU'})", flush=True)
    return ok


# What each check needs from an earlier one: the dataset spec or the trainer.
_NEEDS = {"memory": "spec", "train step": "spec", "eval step": "trainer", "checkpoint": "trainer"}


def _run_checks(checks: list[Check], state: dict) -> bool:
    """Runs the checks in order (a check whose input an earlier one failed to make is skipped),
    logging and printing one line each; True when all passed."""
    ok = True
    for c in checks:
        needs = _NEEDS.get(c.name)
        if needs and needs not in state:
            c.message = f"skipped: needs the {'dataset' if needs == 'spec' else 'train step'} check"
        else:
            c.run()
        ok &= c.ok
        logging.info("preflight %s", c.line())
        print(f"preflight {c.line()}", flush=True)
    return ok


def _hosts_line(strategy, strategy_seconds: float) -> str:
    n = len(host_cpu_devices(strategy))
    return (
        f"{n} host(s), {strategy.num_replicas_in_sync} replicas on {distribute.device_kind()} "
        f"({type(strategy).__name__}, up in {strategy_seconds:.1f} s)"
    )


def check_memory(config, strategy, spec, on_tpu: bool) -> str:
    """The per-chip HBM estimate; on TPU, raises `memory.MemoryBudgetError` when it does not fit."""
    from trm_tf import memory
    from trm_tf.memory_estimate import estimate

    per_chip = config.train.global_batch_size // strategy.num_replicas_in_sync
    est = estimate(config, spec.seq_len, spec.num_puzzle_identifiers, per_chip)
    gib = est.total / 2**30
    if on_tpu:
        hbm = float(config.runtime.hbm_gib) * 2**30
        memory.check_fits(est, hbm, per_chip, strategy.num_replicas_in_sync)
    return f"est. {gib:.2f} GiB per chip at per-chip batch {per_chip}" + (
        f" (budget {float(config.runtime.hbm_gib):g} GiB)" if on_tpu else " (no HBM on CPU)"
    )
