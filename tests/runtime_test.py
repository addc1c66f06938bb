"""trm_tf.runtime: the float32 matmul precision in force where the program compiles, and how a launch.py
process ends (without interpreter teardown when it runs a gRPC server)."""

import os
import subprocess
import sys
import time
import types

import pytest
import tensorflow as tf

from tests.testing.launch import REPO, free_ports
from trm_tf import runtime

ENV = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
REMOTE_HOSTS = "grpc://10.0.0.1:8470,grpc://10.0.0.2:8470"


# --------------------------------------------------------------------------- item 4: matmul precision
def test_highest_precision_is_refused_where_the_program_compiles_remotely():
    for mode, dtype, want in [
        ("highest", "float32", "highest"),
        ("auto", "float32", "highest"),
        ("auto", "bfloat16", "default"),
        ("default", "float32", "default"),
    ]:
        assert runtime.resolve_matmul_precision(mode, dtype, remote_compile=False) == want
        if want == "default":  # nothing to lose: allowed on remote hosts
            assert runtime.resolve_matmul_precision(mode, dtype, remote_compile=True) == want
        else:
            with pytest.raises(runtime.MatmulPrecisionError) as e:
                runtime.resolve_matmul_precision(mode, dtype, remote_compile=True)
            text = str(e.value)
            assert "\n" not in text and f"runtime.matmul_precision={want}" in text
            assert "--tpu=local" in text and "matmul_precision=default" in text
            assert ("auto, as model.forward_dtype=float32" in text) == (mode == "auto")
    with pytest.raises(ValueError, match="matmul_precision"):
        runtime.resolve_matmul_precision("fast", "float32")


def test_set_matmul_precision_refuses_remote_compile_and_leaves_the_flag():
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        tf.config.experimental.enable_tensor_float_32_execution(True)
        with pytest.raises(runtime.MatmulPrecisionError):
            runtime.set_matmul_precision("auto", "float32", remote_compile=True)
        assert tf.config.experimental.tensor_float_32_execution_enabled()  # nothing claimed or set
        # This process drives no remote hosts: the default detection says so, and highest is set.
        assert not runtime.compiles_remotely()
        assert runtime.set_matmul_precision("auto", "float32") == "highest"
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def _launch(*args, timeout=120):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "launch.py"), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_launch_refuses_the_float32_arm_on_remote_tpu_hosts_in_one_line(tmp_path):
    """E4.3's float32 arm with --tpu naming a slice's hosts: exit 1 before any host is contacted (today
    it would wait for the hosts and then train single-pass bfloat16 while recording "highest")."""
    args = [
        "--config=" + os.path.join(REPO, "configs", "e4_3a_fp32.py"),
        "--workdir=gs://bkt/runs/e4_3a",
        f"--tpu={REMOTE_HOSTS}",
        "--config.data.data_dir=gs://bkt/tfds",
        "--config.runtime.peer_timeout_s=1",
    ]
    out = _launch(*args)
    errors = [x for x in out.stderr.splitlines() if x.startswith("E")]
    assert out.returncode == 1, out.stderr[-2000:]
    assert len(errors) == 1 and "runtime.matmul_precision=highest (auto" in errors[0], errors
    assert "worker 0's TPU runtime" in errors[0] and "--tpu=local" in errors[0]
    # Asking for single-pass bfloat16 explicitly passes the check (and then finds no hosts: exit 2).
    out = _launch(*args, "--config.runtime.matmul_precision=default")
    assert out.returncode == 2, out.stderr[-2000:]


_SERVER = """
import sys, tensorflow as tf
cluster = tf.train.ClusterSpec({"worker": [f"localhost:{sys.argv[1]}"]})
tf.distribute.Server(cluster, job_name="worker", task_index=0, protocol="grpc").join()
"""

_CLIENT = """
import sys, tensorflow as tf
from trm_tf import runtime
port = sys.argv[1]
x = tf.ones([4, 4])
runtime.set_matmul_precision("highest", "float32")  # not connected yet: set in this process
local = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True)
print("local", "operand_precision={highest,highest}" in local.experimental_get_compiler_ir(x, x)(stage="hlo"))
resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
    tf.train.ClusterSpec({"worker": [f"localhost:{port}"]}), master=f"grpc://localhost:{port}")
tf.config.experimental_connect_to_cluster(resolver)
print("remote_detected", runtime.compiles_remotely())
try:
    runtime.set_matmul_precision("highest", "float32")
except runtime.MatmulPrecisionError:
    print("refused")
inner = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True)

@tf.function
def outer(a, b):
    with tf.device("/job:worker/replica:0/task:0/device:CPU:0"):  # as TPUStrategy places the program
        return inner(a, b)

print("sum", float(tf.reduce_sum(outer(tf.ones([4, 4]), tf.ones([4, 4])))))
"""


@pytest.mark.slow
def test_the_precision_flag_does_not_reach_a_remote_compile(tmp_path):
    """Why `highest` is refused on remote hosts, shown on CPU: a client with TensorFloat-32 disabled (the
    "highest" switch) drives a second TensorFlow process over gRPC, as a pod's client drives worker 0's
    TPU runtime; that process compiles the jit function (its XLA dump holds the module) and its dot has
    no `operand_precision={highest,highest}`, while the client's own compile of the same function has it.
    If TensorFlow ever carries the flag across, this test fails and the refusal can go."""
    (port,) = free_ports(1)
    dump = str(tmp_path / "server_dump")
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)],
        env=dict(ENV, XLA_FLAGS=f"--xla_dump_to={dump} --xla_dump_hlo_as_text"),
    )
    try:
        time.sleep(3)
        out = subprocess.run(
            [sys.executable, "-c", _CLIENT, str(port)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.kill()
        server.wait()
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "local True" in lines and "remote_detected True" in lines and "refused" in lines
    assert "sum 64.0" in lines
    modules = [f for f in os.listdir(dump) if f.endswith("before_optimizations.txt")]
    assert len(modules) == 1, os.listdir(dump)  # the server compiled the function
    dots = [x for x in open(os.path.join(dump, modules[0])) if " dot(" in x]
    assert len(dots) == 1 and "operand_precision" not in dots[0], dots


# --------------------------------------------------------------------------- item 9: ending the process
def _fake_strategy(num_workers):
    return types.SimpleNamespace(extended=types.SimpleNamespace(_num_workers=num_workers))


def test_which_processes_exit_without_interpreter_teardown():
    default = tf.distribute.get_strategy()
    assert not runtime.exits_hard(default)  # this process started no gRPC server
    assert not runtime.exits_hard(default, server_started=False)
    assert runtime.exits_hard(default, server_started=True)  # a client that drives TPU hosts
    assert runtime.exits_hard(
        _fake_strategy(2), server_started=False
    )  # a MultiWorkerMirrored worker
    assert not runtime.exits_hard(_fake_strategy(1), server_started=False)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert not runtime.exits_hard(mirrored)


_END = """
import atexit, sys
import tensorflow as tf
from absl import logging
from trm_tf import runtime
logging.use_absl_handler()
logging.set_verbosity(logging.INFO)
atexit.register(lambda: print("interpreter teardown", flush=True))
connect, code = sys.argv[1] == "connect", int(sys.argv[2])
if connect:  # what a pod client does: a gRPC server in this process
    server = tf.distribute.Server.create_local_server()
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(server.server_def.cluster), master=server.target)
    tf.config.experimental_connect_to_cluster(resolver, make_master_device_default=False)
strategy = tf.distribute.get_strategy()
print("hard", runtime.exits_hard(strategy))
sys.stdout.write("last line, unflushed")  # a pipe: block-buffered until flushed
logging.info("last log record")
runtime.end_process(strategy, code)
print("returned", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("connect", [True, False])
def test_end_process_flushes_then_exits_hard_only_with_a_grpc_server(connect):
    out = subprocess.run(
        [sys.executable, "-c", _END, "connect" if connect else "local", "3"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 3, out.stderr[-3000:]
    assert f"hard {connect}" in out.stdout
    assert "last line, unflushed" in out.stdout and "last log record" in out.stderr  # flushed
    assert "returned" not in out.stdout
    # Without a server: an ordinary sys.exit, through interpreter teardown; with one: none.
    assert ("interpreter teardown" in out.stdout) == (not connect)
    ok = subprocess.run(
        [sys.executable, "-c", _END, "connect" if connect else "local", "0"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "returned" not in ok.stdout  # it never returns, whatever the code
    assert ("interpreter teardown" in ok.stdout) == (not connect)
