"""The CPU default dtype and the bfloat16 CPU step (trm_tf.runtime): which dtype `model.forward_dtype=auto`
picks from the CPU's flags, when the step's element-wise work is clustered for XLA, that the bfloat16 CPU
step equals the float32 step within bfloat16's error budget, and that a run in the CPU default dtype
resumes exactly. XLA clustering is process-wide, so the steps run in subprocesses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.testing.launch import REPO, launch_cmd, weights_of
from tests.testing.precision import BF16_EPS
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import runtime

AMX = frozenset({"fpu", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
BF16_DOTS = frozenset({"fpu", "avx512f", "avx512_bf16"})
PLAIN = frozenset({"fpu", "avx2"})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    build_tiny_sudoku(d)
    return d


def test_cpu_flags_read_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n"
        "\nprocessor\t: 1\nflags\t\t: fpu\n"
    )
    assert runtime.cpu_flags(str(info)) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert runtime.cpu_flags(str(tmp_path / "missing")) == frozenset()
    assert runtime.cpu_bf16_matrix_unit(runtime.cpu_flags(str(info))) == "amx"


def test_matrix_unit_and_auto_dtype():
    assert runtime.cpu_bf16_matrix_unit(AMX) == "amx"
    assert runtime.cpu_bf16_matrix_unit(AMX - {"amx_tile"}) == "avx512_bf16"  # tiles not enabled
    assert runtime.cpu_bf16_matrix_unit(BF16_DOTS) == "avx512_bf16"
    assert runtime.cpu_bf16_matrix_unit(PLAIN) == "none"
    # auto: bfloat16 where AMX runs the matmuls, float32 on other CPUs; bfloat16 on accelerators.
    assert runtime.resolve_forward_dtype("auto", on_cpu=True, flags=AMX) == "bfloat16"
    assert runtime.resolve_forward_dtype("auto", on_cpu=True, flags=BF16_DOTS) == "float32"
    assert runtime.resolve_forward_dtype("auto", on_cpu=True, flags=PLAIN) == "float32"
    assert runtime.resolve_forward_dtype("auto", on_cpu=False, flags=PLAIN) == "bfloat16"
    for dtype in ("float32", "bfloat16", "float16"):  # an explicit dtype overrides the default
        assert runtime.resolve_forward_dtype(dtype, on_cpu=True, flags=AMX) == dtype


def test_fusion_clusters_only_for_a_bfloat16_cpu_step_without_xla_by_auto():
    assert runtime.uses_fusion_clusters("auto", False, "bfloat16", on_cpu=True)
    assert not runtime.uses_fusion_clusters("false", False, "bfloat16", on_cpu=True)  # explicit
    assert not runtime.uses_fusion_clusters("auto", True, "bfloat16", on_cpu=True)  # whole XLA
    assert not runtime.uses_fusion_clusters("auto", False, "float32", on_cpu=True)  # attention f32
    assert not runtime.uses_fusion_clusters("auto", False, "float16", on_cpu=True)
    assert not runtime.uses_fusion_clusters("auto", False, "bfloat16", on_cpu=False)


def test_cluster_flags_are_added_unless_the_user_set_them():
    env = {}
    runtime._allow_cpu_fusion_clusters(env)
    assert env["TF_XLA_FLAGS"].split() == list(runtime._CLUSTER_FLAGS)
    env = {"TF_XLA_FLAGS": "--tf_xla_min_cluster_size=2"}
    runtime._allow_cpu_fusion_clusters(env)
    assert env["TF_XLA_FLAGS"].split() == ["--tf_xla_min_cluster_size=2", *runtime._CLUSTER_FLAGS]
    env = {"TF_XLA_FLAGS": "--tf_xla_ops_to_cluster=MISC"}
    runtime._allow_cpu_fusion_clusters(env)
    assert env["TF_XLA_FLAGS"].split() == [
        "--tf_xla_ops_to_cluster=MISC",
        "--tf_xla_cpu_global_jit",
    ]
    # This process imported trm_tf.runtime: its flags carry both.
    for flag in ("--tf_xla_cpu_global_jit", "--tf_xla_ops_to_cluster="):
        assert flag in os.environ["TF_XLA_FLAGS"]


# One training step's loss and gradients of the same weights and batch, for each (dtype, jit) given,
# printed as JSON: what the Trainer resolved, the loss sums, the gradients, and how many XLA cluster
# launches (`_XlaRun` ops) a profile of a second call of the step shows.
STEP = r"""
import glob, json, sys, tempfile
import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2
from tests.testing.launch import small_config
from trm_tf.data import datasets, input_pipeline
from trm_tf.trainer import Trainer

data_dir, runs = sys.argv[1], json.loads(sys.argv[2])
spec = datasets.load_spec("sudoku_extreme/pipeline_test", data_dir)
batch = next(iter(input_pipeline.make_train_dataset(spec, 16, seed=0)))
out = {}
for name, (dtype, jit) in runs.items():
    c = small_config(data_dir)
    c.model.forward_dtype, c.runtime.jit_compile = dtype, jit
    t = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=10)
    core = t._core_for_stage(0)
    args = (t.carry.read(), batch, tf.zeros([16], tf.int32), 1.0)
    _, grads, _, sums = core(*args)
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    core(*args)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(glob.glob(logdir + "/plugins/profile/*/*.xplane.pb")[0], "rb").read())
    xla_runs = sum(
        p.event_metadata[e.metadata_id].name.endswith(":_XlaRun")
        for p in space.planes for line in p.lines for e in line.events
    )
    out[name] = {
        "dtype": c.model.forward_dtype,
        "xla": bool(t.jit_compile),
        "clusters": bool(t.fusion_clusters),
        "xla_runs": int(xla_runs),
        "loss": float(sums["loss"]),
        "lm_loss": float(sums["lm_loss"]),
        "grads": [np.asarray(g, np.float64).ravel().tolist() for g in grads],
    }
print(json.dumps(out))
"""


@pytest.mark.slow  # three trainers in a subprocess
def test_bfloat16_cpu_step_equals_the_float32_step_within_bfloat16_error(data_dir):
    runs = {
        "bf16_tf": ["bfloat16", "false"],  # TensorFlow's kernels only
        "bf16": ["bfloat16", "auto"],  # oneDNN dots + XLA fusion clusters: the bf16 CPU step
        "f32": ["float32", "auto"],  # XLA
    }
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run(
        [sys.executable, "-c", STEP, data_dir, json.dumps(runs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    f32, bf16, tf_only = out["f32"], out["bf16"], out["bf16_tf"]
    assert (f32["xla"], f32["clusters"]) == (True, False)
    assert (bf16["dtype"], bf16["xla"], bf16["clusters"]) == ("bfloat16", False, True)
    assert (tf_only["xla"], tf_only["clusters"]) == (False, False)
    # The clustered step launches XLA fusions (several per block call); TensorFlow's alone none.
    assert bf16["xla_runs"] >= 20 and tf_only["xla_runs"] == 0, (bf16["xla_runs"], tf_only)
    # Against float32: the loss within a rounding step or two (measured: 0.1 EPS).
    for key in ("loss", "lm_loss"):
        assert abs(bf16[key] - f32[key]) <= 2 * BF16_EPS * abs(f32[key]), (key, bf16, f32)
    # The gradients collect the rounding of every activation of the two cycles' backward pass:
    # measured 0.4-20 EPS of relative error per weight against float32, as much as TensorFlow's own
    # bf16 kernels (XLA's fusions keep some intermediates in float32, as XLA does on TPU, so the two
    # bf16 arrangements differ from each other by as much as from float32). Within 32 EPS (12.5%),
    # pointing the same way, and no further from float32 than TensorFlow's unfused kernels.
    for a, b, c in zip(bf16["grads"], f32["grads"], tf_only["grads"]):
        a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
        err, err_tf = np.linalg.norm(a - b), np.linalg.norm(c - b)
        assert err <= 32 * BF16_EPS * np.linalg.norm(b) + 1e-12
        assert a @ b >= 0.99 * np.linalg.norm(a) * np.linalg.norm(b)
        assert err <= 1.25 * err_tf + BF16_EPS * np.linalg.norm(b) + 1e-12, (err, err_tf)


@pytest.mark.slow  # launch.py subprocesses
@pytest.mark.parametrize("dtype", ["auto", "bfloat16"])
def test_resume_in_the_cpu_default_dtype_is_exact(data_dir, tmp_path, dtype):
    """8 steps in one go vs 4 steps, stop, 4 more (the learning rate is constant after its 4-step
    warm-up, so the two schedules agree): same weights, bit for bit. "auto" is this machine's CPU
    default; "bfloat16" covers the oneDNN + XLA-cluster step on every machine."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    common = (f"--config.model.forward_dtype={dtype}", "--config.train.eval_every_steps=100")

    def launch(workdir, steps):
        cmd = launch_cmd(data_dir, workdir, f"--config.train.total_steps={steps}", *common)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]

    ref, run = str(tmp_path / "ref"), str(tmp_path / "run")
    want = runtime.resolve_forward_dtype(dtype, on_cpu=True)
    # "auto" resolving to float32 (a CPU without AMX) is the float32 step, whose resume tests/train_test.py
    # checks bit for bit: here only that "auto" is resolved and recorded (one run, no resume).
    resume = dtype != "auto" or want != "float32"
    launch(ref, 8)
    if resume:
        launch(run, 4)
        launch(run, 8)
    for workdir in (ref, run) if resume else (ref,):
        summary = json.load(open(os.path.join(workdir, "run_summary.json")))
        assert summary["status"] == "finished" and summary["step"] == 8
        assert summary["forward_dtype"] == want
        assert summary["cpu_bf16_matrix_unit"] == runtime.cpu_bf16_matrix_unit()
        assert summary["xla_fusion_clusters"] == (want == "bfloat16")
        assert summary["xla"] == (want == "float32")
        # config.json holds the resolved dtype: a resume that resolves differently is refused.
        config = json.load(open(os.path.join(workdir, "config.json")))
        assert config["model"]["forward_dtype"] == want
    if not resume:
        return
    a, b = weights_of(ref), weights_of(run)
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
