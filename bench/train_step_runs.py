"""The timed runners of bench/train_step.py: our Trainer in this process, the PyTorch reference in a subprocess.

Also the matmul-peak measurement (the MFU denominator) and the profiler capture of a few train loops.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time

import common

SUDOKU_SEQ_LEN, SUDOKU_VOCAB = 81, 11

# The reference side, run by --torch_python. It only imports the reference model from the directory given in
# its config (sys.argv[1]); the loss is written here from docs/model.md#losses (stablemax in float64
# + q_halt BCE). Protocol: prints one JSON "ready" line, then answers each stdin line "run N" with
# the N step times.
TORCH_DRIVER = r"""
import json, resource, sys, time
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["reference_dir"])
import torch
import torch.nn.functional as F
from models.recursive_reasoning.trm import (
    TinyRecursiveReasoningModel_ACTV1Config as Config,
    TinyRecursiveReasoningModel_ACTV1_Inner as Inner,
    TinyRecursiveReasoningModel_ACTV1InnerCarry as Carry,
)

torch.manual_seed(0)
m = cfg["model"]
B, S, D, P = m["batch_size"], m["seq_len"], m["hidden_size"], m["puzzle_emb_len"]
model = Inner(Config(**m)).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
g = torch.Generator().manual_seed(0)
inputs = torch.randint(1, m["vocab_size"], (B, S), generator=g, dtype=torch.int32)
labels = torch.randint(2, m["vocab_size"], (B, S), generator=g).long()
batch = {"inputs": inputs, "puzzle_identifiers": torch.zeros(B, dtype=torch.int32)}
carry = Carry(z_H=model.H_init.expand(B, S + P, D).clone(), z_L=model.L_init.expand(B, S + P, D).clone())


def stablemax_loss(logits, q_halt):
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    logp = torch.log(s / s.sum(-1, keepdim=True))
    mask = labels != -100
    tok = -torch.gather(logp, -1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1) * mask
    counts = mask.sum(-1)
    lm = (tok.sum(-1) / counts.clamp_min(1)).sum()
    with torch.no_grad():
        seq_ok = ((mask & (logits.argmax(-1) == labels)).sum(-1) == counts).float()
    qh = F.binary_cross_entropy_with_logits(q_halt, seq_ok, reduction="sum")
    return lm + 0.5 * qh


def step():
    global carry
    carry, logits, (q_halt, _) = model(carry, batch)
    (stablemax_loss(logits, q_halt) / B).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


print(json.dumps({
    "ready": True,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "params": sum(p.numel() for p in model.parameters()),
}), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    times = []
    c0 = time.process_time()
    for _ in range(int(cmd[1])):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "times": times,
        "cpu_s": time.process_time() - c0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)
"""


# ---------------------------------------------------------------------------------------------- peak


def measure_matmul_peak(tf, shapes: dict, dtypes: list[str], repeats: int) -> dict:
    """Best-of-N GFLOP/s of plain (oneDNN) and jit-compiled (XLA) matmuls of the given shapes."""
    out = {}
    jitted = tf.function(tf.linalg.matmul, jit_compile=True)
    for dt in dtypes:
        for name, (m, k, n) in shapes.items():
            a = tf.random.stateless_normal([m, k], seed=[1, 2], dtype=tf.float32)
            b = tf.random.stateless_normal([k, n], seed=[3, 4], dtype=tf.float32)
            a, b = tf.cast(a, dt), tf.cast(b, dt)
            flops = 2.0 * m * k * n
            # CPU eager ops and function calls return when the result is computed: no copy-out needed.
            for kind, fn in (("plain", tf.linalg.matmul), ("jit", jitted)):
                t = common.best_of(functools.partial(fn, a, b), repeats, warmup=2)
                out[f"{dt}/{name}/{kind}"] = round(flops / t / 1e9, 1)
    return out


# ---------------------------------------------------------------------------------------------- runners


def profile_loops(tf, run, logdir: str, num_calls: int) -> None:
    """Captures a TensorBoard profile (`tensorboard --logdir=LOGDIR`, Profile tab) of `num_calls`
    train_loop calls of a warmed-up TFRun; each call is marked as a profiler step."""
    tf.profiler.experimental.start(logdir)
    try:
        for i in range(num_calls):
            with tf.profiler.experimental.Trace("train", step_num=i, _r=1):
                run.call()
    finally:
        tf.profiler.experimental.stop()


# TensorFlow op types that are not kernels doing the step's work: executor and function containers.
_CONTAINERS = {
    "Process",
    "Run",
    "Start",
    "Execute",
    "Done",
    "DoCompute",
    "RunWithBorrowedArgs",
    "Root",
}


def op_class(op_type: str) -> str | None:
    """The class of a TensorFlow op type in the step-time table (None: not a kernel of the step)."""
    if op_type in _CONTAINERS or op_type.startswith((" ", "__")):
        return None
    if "MatMul" in op_type or op_type in ("Einsum", "_MklEinsum"):
        return "matmul (oneDNN)"
    if op_type.startswith("_Xla"):
        return "XLA fusion clusters"
    if op_type == "Cast":
        return "cast"
    if "Transpose" in op_type:
        return "transpose"
    return "other TF ops (element-wise, reductions, optimizer)"


def op_class_seconds(logdir: str, num_calls: int) -> dict:
    """Seconds per train_loop call spent in each op class (`op_class`), from the TensorBoard profile in
    `logdir` (`profile_loops`): the summed durations of the TensorFlow op events on the executor
    threads (input-pipeline threads left out). Ops that run concurrently (inter-op parallelism) both
    count, so the sum can exceed the wall time; the shares compare arrangements. A step compiled whole
    by XLA shows as one "XLA program" (its thunks are not traced)."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    out: dict = {}
    for path in tf.io.gfile.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")):
        space = xplane_pb2.XSpace()
        with tf.io.gfile.GFile(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            meta = plane.event_metadata
            for line in plane.lines:
                if "tf_data" in line.name:
                    continue
                for ev in line.events:
                    name = meta[ev.metadata_id].name
                    if ":" not in name:
                        continue
                    cls = op_class(name.rsplit(":", 1)[1])
                    if cls is not None:
                        out[cls] = out.get(cls, 0.0) + ev.duration_ps * 1e-12 / num_calls
    return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


class TFRun:
    """One Trainer + input iterator; `run_one()` times one `train_loop` call."""

    def __init__(self, tf, label, config, strategy, spec, steps_per_loop):
        from trm_tf.data import input_pipeline
        from trm_tf.trainer import Trainer

        self.tf, self.label, self.config, self.spl = tf, label, config, steps_per_loop
        self.mem = {"peak_rss_before_build_mb": common.peak_rss_mb()}
        self.rss_before = common.current_rss_mb()
        t0 = time.perf_counter()
        self.trainer = Trainer(config, strategy, spec, total_steps=10**6)
        self.iterator = iter(
            input_pipeline.distribute_train(
                strategy, spec, config.train.global_batch_size, config.seed, 0, config.data.prefetch
            )
        )
        self.build_s = time.perf_counter() - t0
        self.mem["peak_rss_after_build_mb"] = common.peak_rss_mb()
        self.times: list[float] = []
        self.cpu_s = 0.0
        self.first_call_s = None

    def call(self) -> float:
        # Auto-clustering is read at every function call (a function is instantiated per setting):
        # on for a configuration with XLA fusion clusters, off for the others, as each would train.
        self.tf.config.optimizer.set_jit(
            "autoclustering" if self.trainer.fusion_clusters else False
        )
        t0 = time.perf_counter()
        self.trainer.train_loop(self.iterator, self.spl)
        int(self.trainer.step.numpy())  # blocks until the loop's updates are done
        return time.perf_counter() - t0

    def warmup(self, n: int) -> None:
        """n untimed calls; the first one (trace + compile + a loop) is recorded as first_call_s."""
        self.first_call_s = self.call()  # trace + XLA compile + one loop
        self.mem["peak_rss_after_first_step_mb"] = common.peak_rss_mb()
        for _ in range(n - 1):
            self.call()
        self.mem["rss_held_after_warmup_mb"] = round(common.current_rss_mb() - self.rss_before, 1)

    def run_one(self) -> None:
        """One timed call; appends the time per step and adds the process CPU time."""
        c0 = common.cpu_seconds()
        t = self.call()
        self.cpu_s += common.cpu_seconds() - c0
        self.times.append(t / self.spl)

    def losses(self) -> float:
        """Mean training loss over all steps run (a sanity value: finite, ~ln(vocab) at init)."""
        m = self.trainer.read_metrics(max(1, int(self.trainer.step.numpy())))
        return m["loss"]


class TorchRun:
    """The PyTorch reference in a persistent subprocess (see TORCH_DRIVER)."""

    def __init__(self, args, dtype: str, steps_per_loop: int):
        self.label = f"torch_reference/{dtype}"
        self.dtype = dtype
        self.spl = steps_per_loop
        model = common.reference_model_config(
            variant=args.variant,
            batch=args.batch,
            seq_len=SUDOKU_SEQ_LEN,
            vocab=SUDOKU_VOCAB,
            puzzles=1,
            hidden=args.hidden,
            H=args.H,
            L=args.L,
            L_layers=args.L_layers,
            num_heads=args.num_heads,
            halt_max_steps=16,
            dtype=dtype,
            puzzle_emb_len=16,
        )
        cfg = {"reference_dir": os.path.abspath(args.torch_reference), "model": model}
        env = dict(os.environ)
        if args.torch_threads:
            env["OMP_NUM_THREADS"] = str(args.torch_threads)
        self.proc = subprocess.Popen(
            [args.torch_python, "-c", TORCH_DRIVER, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._read()
        self.times: list[float] = []
        self.cpu_s = 0.0
        self.peak_rss_mb = None

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"torch reference exited (code {self.proc.wait()})")
        return json.loads(line)

    def _run(self, n: int) -> dict:
        self.proc.stdin.write(f"run {n}\n")
        self.proc.stdin.flush()
        out = self._read()
        self.peak_rss_mb = round(out["peak_rss_mb"], 1)
        return out

    def warmup(self, n: int) -> None:
        self.first_call_s = sum(self._run(self.spl)["times"])
        for _ in range(n - 1):
            self._run(self.spl)

    def run_one(self) -> None:
        out = self._run(self.spl)
        self.cpu_s += out["cpu_s"]
        self.times.append(sum(out["times"]) / self.spl)

    def close(self) -> None:
        """Stops the subprocess."""
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
