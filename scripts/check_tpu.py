"""Prints what TensorFlow sees of the TPU; run on a TPU VM worker by setup_workers.sh.

`--tpu=local` checks the chips of this host (single-host slices). On a multi-host slice the
client on worker 0 connects to every host's TPU runtime (`--tpu=grpc://ip:8470,...`, with
TPU_LOAD_LIBRARY=0 in the environment), which is also how the trainer runs there.

The TPU is resolved and initialised by the trainer's own code, never by a copy of it: the
resolver comes from `trm_tf.distribute.tpu_resolver` and the strategy from
`trm_tf.distribute.get_strategy`, exactly what launch.py calls. A check with its own
TPUClusterResolver call once passed while training failed (the trainer turned the grpc list into
a Python list, which TensorFlow rejects); sharing the code makes that impossible.

Prints one JSON line (host, TF version, TPU device count, replicas, matmul check) and exits 0 only
when TPU devices were found and every replica computed the expected value.
"""

import argparse
import json
import os
import socket
import sys


def _first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def main(argv: list[str] | None = None) -> int:
    """Builds the trainer's TPU strategy, runs one matmul per replica and reports.

    Args:
        argv: Command-line arguments (default: sys.argv[1:]).

    Returns:
        The process exit code: 0 when the TPU works, 1 otherwise.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tpu", default="local", help="'local' or grpc://ip:8470,... endpoints")
    parser.add_argument("--expect", type=int, default=0, help="expected TPU device count (0: any)")
    args = parser.parse_args(argv)

    # `python3 scripts/check_tpu.py` puts scripts/ on sys.path, not the repository root that
    # holds trm_tf.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    # Imported late so --help works without TensorFlow.
    import tensorflow as tf

    from trm_tf import distribute

    report = {"host": socket.gethostname(), "tpu": args.tpu, "tf_version": tf.__version__}

    def fail(message: str) -> int:
        report["error"] = message
        print(json.dumps(report))
        return 1

    try:
        resolver = distribute.tpu_resolver(args.tpu)
    except Exception as e:  # the exception the trainer would die of, as one line
        return fail(f"cannot build the TPU resolver: {_first_line(e)}")
    # On a machine without TPU, 'local' resolves but sees no chips; initialising would only raise
    # an opaque NotFoundError, so stop here with a clear message.
    if args.tpu == "local" and resolver.num_accelerators().get("TPU", 0) == 0:
        return fail("no TPU chips visible to TensorFlow on this host")
    try:
        strategy = distribute.get_strategy(args.tpu)
    except distribute.TPUUnavailableError as e:
        return fail(str(e))
    report["tpu_devices"] = len(tf.config.list_logical_devices("TPU"))
    report["num_replicas"] = strategy.num_replicas_in_sync

    report["matmul_ok"] = _matmul_on_every_replica(tf, strategy)
    ok = report["tpu_devices"] > 0 and report["matmul_ok"]
    if report["tpu_devices"] == 0:
        report["error"] = "the strategy has no TPU devices"
    if args.expect and report["tpu_devices"] != args.expect:
        report["error"] = f"expected {args.expect} TPU devices"
        ok = False
    print(json.dumps(report))
    return 0 if ok else 1


def _matmul_on_every_replica(tf, strategy, n: int = 128) -> bool:
    """Runs ones(n, n) @ ones(n, n) on every replica: every entry is n, so each sum must be n**3."""

    @tf.function
    def matmul_sum():
        ones = tf.ones([n, n], tf.float32)
        return tf.reduce_sum(tf.matmul(ones, ones))

    values = strategy.experimental_local_results(strategy.run(matmul_sum))
    sums = [float(v.numpy()) for v in values]
    return len(sums) == strategy.num_replicas_in_sync and all(s == float(n**3) for s in sums)


if __name__ == "__main__":
    sys.exit(main())
