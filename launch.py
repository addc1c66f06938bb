r"""Trains and evaluates a TRM experiment described by an ml_collections config file.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/trm_quickstart
  python launch.py --config=configs/e2_3_attention.py --workdir=gs://BUCKET/runs/e2_3 --tpu=local
  python launch.py --config=configs/e1_1_baseline.py:runlocal --workdir=/tmp/smoke \
      --config.model.hidden_size=32
  python launch.py --config=configs/e2_3_attention.py --workdir=/tmp/ref_eval --mode=eval \
      --reference_checkpoint=step_155718.pt

`--reference_checkpoint` evaluates a state_dict saved by the PyTorch reference (`.pt` with torch installed,
or `.npz` / `.safetensors`) with the model --config describes, instead of a checkpoint of --workdir: see
trm_tf/tools/reference_eval.py.

Every run resumes from the newest checkpoint in --workdir, so a preempted job restarts with the same command.

`--tpu` is "local" on a one-host TPU VM, or the comma-separated grpc://ip:8470 addresses of a multi-host
slice's hosts for the client on worker 0 (`--tpu=$(scripts/tpu_address.sh --name=NAME --zone=ZONE)`; a bare
TPU name is refused, since resolving it needs the Cloud TPU API client). With remote hosts, launch.py sets
TPU_LOAD_LIBRARY=0 before importing TensorFlow, so the client leaves the local chips to the TPU runtime.

`--preflight` runs the checks of a new TPU slice instead of training (versions, hosts, storage from the
client and every host, memory estimate, one compiled train and eval step, a checkpoint round trip with the
carry) and prints one line each; see trm_tf/preflight.py.

Exit codes: 0 done (also after a preemption, when the checkpoint was saved: run_summary.json then says
"preempted"), 1 bad flags or config (a misspelt field, local paths where remote hosts need gs://, a TPU
name as --tpu), 2 TPU / cluster unreachable (a host or worker that did not answer names itself), 3 dataset missing,
4 non-finite loss or weights, 5 the per-chip memory estimate exceeds the accelerator's HBM, 6 preflight
failed, 7 the workdir has checkpoints but none can be restored, 8 the workdir is in use by another run
(its `run.lock`). A changed model/data/optimizer on resume and `--mode=eval` without a checkpoint are
config errors (1). Every failure leaves `"status": "failed"` with the error in run_summary.json; user errors
print one line (`--verbosity=1` adds the traceback).
"""

import os
import sys

os.environ["TRM_TF_PROCESS_START"] = repr(__import__("time").time())  # goodput: before TF imports


def _tpu_argument(argv: list[str]) -> str:
    """The value of `--tpu` in a command line (`--tpu=V` or `--tpu V`; the last one wins, as in absl),
    read before absl parses the flags, which happens only after TensorFlow is imported."""
    value = ""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--tpu="):
            value = arg.split("=", 1)[1]
        elif arg == "--tpu" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def _set_environment(argv: list[str], environ=os.environ) -> None:
    """The environment TensorFlow reads at import: set before `import tensorflow`.

    When `--tpu` names remote hosts (anything but "" or "local", as `distribute.drives_remote_hosts`
    says), this process is the pod's client on worker 0: it must not load libtpu and grab the local chips,
    which the TPU runtime serving the other hosts' client owns, so TPU_LOAD_LIBRARY=0 (what
    scripts/launch_pod.sh sets too; a command run by hand on worker 0 gets it here).
    """
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    environ.setdefault("KERAS_BACKEND", "tensorflow")
    tpu = _tpu_argument(argv).strip()
    if tpu and tpu != "local":
        environ["TPU_LOAD_LIBRARY"] = "0"


_set_environment(sys.argv[1:])

import time  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from configs.validation import validate  # noqa: E402
from trm_tf import distribute, evaluators  # noqa: E402
from trm_tf import runtime as trm_runtime  # noqa: E402
from trm_tf.data.datasets import DatasetMissingError  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Experiment config file (configs/*.py), optionally with ':arg'.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (local path or gs://...).")
_MODE = flags.DEFINE_enum(
    "mode", "train_and_eval", ["train", "eval", "train_and_eval"], "What to run."
)
_TPU = flags.DEFINE_string(
    "tpu",
    "",
    "TPU to use: 'local' on a single-host TPU VM; on a multi-host slice the comma-separated "
    "grpc://ip:8470 addresses of its hosts, from the client on worker 0 "
    "(scripts/tpu_address.sh prints them; a TPU name is refused).",
)
_CHECKPOINT = flags.DEFINE_enum(
    "checkpoint",
    "last",
    ["last", "best"],
    "With --mode=eval: evaluate the newest checkpoint (last) or the run's best one (workdir/best, "
    "chosen by eval.best_metric).",
)
_PREFLIGHT = flags.DEFINE_bool(
    "preflight",
    False,
    "Check a new slice (about two minutes) instead of training; exit 0 if all pass.",
)
_REFERENCE = flags.DEFINE_string(
    "reference_checkpoint",
    None,
    "With --mode=eval: evaluate this PyTorch reference state_dict (.pt, .npz, .safetensors) with the "
    "model of --config instead of the workdir's checkpoint.",
)
flags.mark_flags_as_required(["config", "workdir"])


def _check_flags(config, workdir: str, tpu: str) -> None:
    """Rejects a bad config or flag combination in one line (exit 1), before any strategy is built."""
    runtime = config.runtime
    try:
        validate(config)  # again, now that the --config.* overrides are applied
        evaluators.check_config(config)  # the names in trm_tf.evaluators.EVALUATORS, their needs
        if _REFERENCE.value and _MODE.value != "eval":
            raise ValueError("--reference_checkpoint needs --mode=eval")
        if _CHECKPOINT.value == "best" and _MODE.value != "eval":
            raise ValueError("--checkpoint=best needs --mode=eval (training resumes from the last)")
        distribute.require_tpu_address(tpu)
        distribute.require_shared_paths(tpu, workdir=workdir, data_dir=config.data.data_dir)
        if runtime.input_pipelines == "per_replica" and (tpu or runtime.num_logical_cpus < 2):
            raise ValueError(
                "runtime.input_pipelines=per_replica is the CPU pod rehearsal: it needs no --tpu and "
                "runtime.num_logical_cpus >= 2"
            )
        # "highest" must be in force where the program is compiled: refused on remote TPU hosts.
        trm_runtime.resolve_matmul_precision(
            runtime.matmul_precision,
            config.model.forward_dtype,
            remote_compile=distribute.drives_remote_hosts(tpu),
        )
    except ValueError as e:
        logging.error("%s", e)
        sys.exit(1)


def _exit_codes() -> list[tuple[type, int]]:
    """User errors: one line (the traceback with --verbosity=1) and a documented exit code."""
    from trm_tf import memory, train  # noqa: PLC0415  (Keras/TFDS after flags)
    from trm_tf import workdir as run_dir  # noqa: PLC0415
    from trm_tf.actions import NonFiniteLossError  # noqa: PLC0415
    from trm_tf.checkpointing import CheckpointError  # noqa: PLC0415
    from trm_tf.tools import reference_eval  # noqa: PLC0415

    return [
        (DatasetMissingError, 3),
        (memory.MemoryBudgetError, 5),
        (NonFiniteLossError, 4),
        (run_dir.WorkdirBusyError, 8),
        (run_dir.ConfigChangedError, 1),
        (CheckpointError, 7),
        (train.NoCheckpointError, 1),
        (reference_eval.ReferenceCheckpointError, 1),
        (trm_runtime.MatmulPrecisionError, 1),
    ]


def _record_config(rundir, config) -> None:
    """The chief: refuses a config that changes the state of the run being resumed, logs the changes that
    are allowed, and writes config.json."""
    resuming = bool(tf.io.gfile.glob(os.path.join(rundir.checkpoints, "ckpt-*.index")))
    for change in rundir.check_config(config, resuming):
        logging.info("Config change on resume (allowed): %s", change)
    rundir.write_config(config)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    tf.get_logger().setLevel("ERROR")
    config = _CONFIG.value
    workdir = _WORKDIR.value if "://" in _WORKDIR.value else os.path.abspath(_WORKDIR.value)
    tpu = _TPU.value
    runtime = config.runtime
    _check_flags(config, workdir, tpu)
    t0 = time.perf_counter()
    try:
        strategy = distribute.get_strategy(
            tpu, runtime.num_logical_cpus, float(runtime.peer_timeout_s)
        )
    except (distribute.TPUUnavailableError, distribute.PeerTimeoutError) as e:
        logging.error("%s", e)
        sys.exit(2)
    strategy_seconds = time.perf_counter() - t0
    from trm_tf.trainer import resolve_forward_dtype  # noqa: PLC0415  (Keras after flags)

    # model.forward_dtype="auto" -> this machine's dtype, before anything reads it or config.json
    # records the config (a resume that resolves differently is then refused as a model change).
    resolve_forward_dtype(config, strategy)
    tf.io.gfile.makedirs(workdir)
    logging.info("Config:\n%s", config)
    if _PREFLIGHT.value:
        from trm_tf import preflight  # noqa: PLC0415

        ok = preflight.run(config, workdir, strategy, tpu, strategy_seconds)
        trm_runtime.end_process(strategy, 0 if ok else 6)
    chief = distribute.is_chief(strategy)
    from trm_tf import train  # noqa: PLC0415  (Keras/TFDS after flags)
    from trm_tf import workdir as run_dir  # noqa: PLC0415
    from trm_tf.tools import reference_eval  # noqa: PLC0415

    rundir = run_dir.RunDir(workdir, writer=chief)
    lock = run_dir.RunLock(rundir.path)
    rundir.lock = lock
    exit_codes = _exit_codes()
    code = 0
    try:
        if chief:
            lock.acquire()
            _record_config(rundir, config)
        if _REFERENCE.value:
            reference_eval.run(config, workdir, strategy, _REFERENCE.value, rundir=rundir)
        else:
            train.run(
                config,
                workdir,
                strategy,
                _MODE.value,
                tpu=tpu,
                rundir=rundir,
                checkpoint=_CHECKPOINT.value,
            )
    except Exception as e:  # noqa: BLE001  (every failure leaves status "failed" with its error)
        code = next((c for cls, c in exit_codes if isinstance(e, cls)), None)
        busy = isinstance(e, run_dir.WorkdirBusyError)
        if chief and not busy and not isinstance(e, run_dir.ConfigChangedError):
            rundir.update_summary(status="failed", error=f"{type(e).__name__}: {e}")
        if code is None:
            if not trm_runtime.exits_hard(strategy):
                raise  # a bug, not a user error: the full traceback
            logging.exception("Traceback:")  # the same, then exit 1 without interpreter teardown
            code = 1
        else:
            logging.error("%s", " ".join(str(e).split("\n")))
            if logging.get_verbosity() >= logging.DEBUG:
                logging.exception("Traceback:")
    finally:
        lock.release()
    # Everything is written and the lock released: a cluster worker or a client that started a gRPC
    # server ends here without interpreter teardown (trm_runtime.end_process); others sys.exit(code).
    trm_runtime.end_process(strategy, code)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag, a misspelt config field or a missing config file reported in
    one line (exit 1) instead of several tracebacks."""
    try:
        rest = flags.FLAGS(argv)
        _CONFIG.value.keys()  # the config file is loaded lazily: fail here, in one line
        return rest
    except OSError as e:
        last = [x.strip() for x in str(e).splitlines() if x.strip()][-1]
        sys.stderr.write(f"launch.py: --config: {last}\n")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001  (flags.Error, AttributeError, ValueError, ...)
        cause = e.__cause__ or e.__context__ or e
        text = str(cause if isinstance(e, flags.Error) and cause is not e else e)
        text = text.encode().decode("unicode_escape") if "\\n" in text else text
        if (
            "Traceback (most recent call last)" in text
        ):  # ml_collections embeds the get_config traceback
            text = [x for x in text.splitlines() if x.strip()][-1]
        text = " ".join(text.replace("'", "").split())
        sys.stderr.write(f"launch.py: {type(e).__name__}: {text}\n")
        sys.exit(1)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
