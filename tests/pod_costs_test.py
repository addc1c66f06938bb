"""The host side's budget on the pod rehearsal, counted: storage calls and device fetches of the client.

The rehearsal's one client with four input pipelines (MirroredStrategy over 4 logical CPUs, one input
pipeline per replica, bfloat16, the quickstart recipe shrunk, a tiny generated Sudoku; workdir on `ram://`
so the `gs://` code paths run) trains under `trm_tf/tools/host_costs.py` with a log line after every
loop, as E1.1 does. Issue #21's budgets:

* between two training loops without a checkpoint or evaluation: at most one device fetch, and no storage
  call on the main thread (logs, summary and heartbeat belong to a background writer);
* per evaluation batch: at most one fetch;
* neither grows with the run: a plain boundary or an evaluation batch late in the run costs what an
  early one does.

The rehearsal's ARC run (puzzle groups split over the four pipelines) is counted too, and its run
directory (copied out of `ram://`) serves the rehearsal's ARC check as well: its pass@K and submission
equal a one-pipeline evaluation of the same checkpoint (one run for both instead of two).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import host_latency  # noqa: E402
from tests.testing.launch import (  # noqa: E402
    REHEARSAL_DTYPE,
    REPO,
    TINY_ARC,
    overrides,
    tiny_run_cmd,
)
from tests.testing.tiny_datasets import build_tiny_arc  # noqa: E402

pytestmark = pytest.mark.slow

# Training steps of the Sudoku run: 8 loops of 2 (checkpoint and evaluation every 4 loops).
LONG = 16
# Training steps of the ARC run: 4 loops of 2; checkpoint and evaluation (the whole test split) at the end.
ARC_STEPS = 8
# The rehearsal's ARC run: puzzle groups over four pipelines, the ARC evaluator (pass@K votes, more
# per-row fields), attention with RoPE.
# (The rehearsal's: no periodic evaluation, a full one at the end.)
ARC = (
    *overrides(TINY_ARC),
    "--config.train.eval_every_steps=100",
    "--config.eval.final_full=True",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    host_latency.build_data(data_dir)
    return host_latency.run(REPO, data_dir, LONG)


@pytest.fixture(scope="module")
def arc_run(tmp_path_factory):
    """(data dir, dataset spec, the run directory copied out of ram://, the instrument's report)."""
    data_dir = str(tmp_path_factory.mktemp("tfds_arc"))
    spec = build_tiny_arc(data_dir)
    pod = str(tmp_path_factory.mktemp("arc") / "pod")
    report = host_latency.run(
        REPO, data_dir, ARC_STEPS, dataset=spec.name, extra=ARC, copy_workdir_to=pod
    )
    return data_dir, spec, pod, report


def _worst_boundary(report):
    plain = [b for b in report["loops"]["boundaries"] if b["plain"]]
    assert plain, report["loops"]
    return max(plain, key=lambda b: (b["fetch_main"] + b["fetch_other"], b["storage_main"]))


def _worst_batch(report):
    evals = report["evals"]["evaluations"]
    assert evals and all(e["batches"] >= 2 for e in evals), evals
    return max(
        (e for e in evals),
        key=lambda e: e["max_per_batch"]["fetch_main"] + e["max_per_batch"]["fetch_other"],
    )


def test_shape_of_the_counted_run(reports):
    long = reports
    assert long["exit_code"] == 0 and long["loops"]["count"] == LONG // 2
    # one boundary with a checkpoint and an evaluation, the rest are plain
    assert long["loops"]["plain_boundaries"] == LONG // 2 - 2
    assert [b["with"] for b in long["loops"]["boundaries"] if not b["plain"]] == [
        ["checkpoint", "eval"]
    ]
    assert long["evals"]["count"] == 2
    batches = {e["batches"] for e in long["evals"]["evaluations"]}
    assert len(batches) == 1 and batches.pop() >= 4  # every evaluation: the whole test split
    # the bench's figures from the same report (bench/host_latency.py)
    figures = host_latency.overhead(long, loop_s=4.7, eval_batch_s=0.45)
    assert figures["plain_boundaries"] == LONG // 2 - 2 and figures["eval_batches"] >= 8
    assert (
        0 < figures["per_loop"]["share_of_loop"] and 0 < figures["per_eval_batch"]["share_of_eval"]
    )


def test_between_loops_at_most_one_fetch_and_no_main_thread_storage(reports):
    b = _worst_boundary(reports)
    fetches = b["fetch_main"] + b["fetch_other"]
    assert fetches <= 1 and b["storage_main"] == 0, (
        f"after loop {b['after_loop']}: {fetches} fetches, {b['storage_main']} storage calls on the main "
        f"thread; by call site: {b['by_site']}"
    )


def test_one_fetch_per_evaluation_batch(reports):
    e = _worst_batch(reports)
    worst = e["max_per_batch"]
    assert worst["fetch_main"] + worst["fetch_other"] <= 1, (
        f"{worst['fetch_main'] + worst['fetch_other']} fetches in an evaluation batch; the evaluation's "
        f"calls by call site: {e['total']['by_site']}"
    )
    assert worst["storage_main"] == 0


def test_counts_do_not_grow_with_the_run(reports):
    """The plain boundaries before the run's checkpoint/evaluation and after it cost the same, and so do
    the batches of its two evaluations (a cost that grew with the run's history would show here)."""
    plain = [b for b in reports["loops"]["boundaries"] if b["plain"]]
    middle = LONG // 4  # the boundary with the checkpoint and the evaluation
    early = [b for b in plain if b["after_loop"] < middle]
    late = [b for b in plain if b["after_loop"] > middle]
    assert early and late
    for key in ("storage_main", "fetch_main"):
        # (the first log may create a file that later ones append to: compare the steady state)
        assert max(b[key] for b in late) <= max(b[key] for b in early), (key, early, late)
        assert late[-1][key] == early[-1][key], (key, early, late)
    for key in ("fetch_main", "storage_main"):
        values = [e["max_per_batch"][key] for e in reports["evals"]["evaluations"]]
        assert len(set(values)) == 1, (key, values)


def test_arc_between_loops_and_per_batch_budgets(arc_run):
    arc_report = arc_run[3]
    assert arc_report["exit_code"] == 0 and arc_report["loops"]["count"] == ARC_STEPS // 2
    b = _worst_boundary(arc_report)
    assert b["fetch_main"] + b["fetch_other"] <= 1 and b["storage_main"] == 0, b["by_site"]
    e = _worst_batch(arc_report)
    worst = e["max_per_batch"]
    assert worst["fetch_main"] + worst["fetch_other"] <= 1, e["total"]["by_site"]


def test_arc_four_pipelines_scores_as_one_pipeline(arc_run, tmp_path):
    """ARC trained with puzzle groups split over four pipelines: its pass@K and submission equal a
    single-pipeline evaluation of the same checkpoint on the same rows."""
    data_dir, spec, pod, report = arc_run
    assert report["exit_code"] == 0
    pod_eval = json.load(open(os.path.join(pod, "eval_results.json")))["latest"]
    assert pod_eval["step"] == ARC_STEPS and pod_eval["full"]
    assert pod_eval["num_examples"] == spec.num_test_examples  # every row once over the 4 pipelines

    single = str(tmp_path / "single")
    os.makedirs(single)
    shutil.copytree(os.path.join(pod, "checkpoints"), os.path.join(single, "checkpoints"))
    # One pipeline, one device, the same per-device eval batch (16 / 4 replicas = 4), in bfloat16.
    cmd = tiny_run_cmd(
        data_dir,
        single,
        *overrides(REHEARSAL_DTYPE),
        *ARC,
        "--config.eval.subset_size=-1",
        "--config.eval.global_batch_size=4",
        "--mode=eval",
        dataset=spec.name,
    )
    out = subprocess.run(
        cmd, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-4000:]
    one_eval = json.load(open(os.path.join(single, "eval_results.json")))["latest"]
    assert one_eval["num_examples"] == pod_eval["num_examples"]
    scores = [k for k in pod_eval if k.startswith("ARC/")]
    assert scores and {k: one_eval[k] for k in scores} == {k: pod_eval[k] for k in scores}
    a = json.load(open(os.path.join(pod, f"submission_step{ARC_STEPS}.json")))
    b = json.load(open(os.path.join(single, f"submission_step{ARC_STEPS}.json")))
    assert a and a == b
