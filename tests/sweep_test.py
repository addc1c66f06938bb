"""Tests of the batch runner sweep.py with a fake launcher (no training, no TensorFlow import).

The fake launcher records its argv, prints a line, and writes run_summary.json / eval_results.json as
launch.py would, failing or stopping early for the run ids named in FAKE_FAIL / FAKE_INCOMPLETE.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sweep
from configs import catalogue

REPO = Path(__file__).resolve().parents[1]

FAKE = r"""
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
wd = args["--workdir"]
rid = os.path.basename(wd)
os.makedirs(wd, exist_ok=True)
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
print("fake training", rid, "cwd", os.getcwd())
if rid in os.environ.get("FAKE_FAIL", "").split(","):
    print("boom")
    sys.exit(3)
if rid in os.environ.get("FAKE_INCOMPLETE", "").split(","):
    sys.exit(0)
with open(os.path.join(wd, "eval_results.json"), "w") as f:
    json.dump({"latest": {"step": 10, "full": False, "exact_accuracy": 0.2},
               "history": [{"step": 5, "full": True, "exact_accuracy": 0.4},
                           {"step": 10, "full": False, "exact_accuracy": 0.2}]}, f)
with open(os.path.join(wd, "run_summary.json"), "w") as f:
    json.dump({"experiment_id": rid, "status": "finished", "wall_time_s": 1.5}, f)
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(launcher argv, calls file reader); FAKE_* env vars steer the fake."""
    script = tmp_path / "fake_launch.py"
    script.write_text(FAKE)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.delenv("FAKE_INCOMPLETE", raising=False)

    def launched():
        if not calls.exists():
            return []
        return [json.loads(line) for line in calls.read_text().splitlines()]

    return [sys.executable, str(script)], launched


def summary(root):
    return json.loads((Path(root) / "sweep_summary.json").read_text())


def runs_of(*ids):
    return sweep.select(list(ids), None)


def test_list_output(capsys):
    assert sweep.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(catalogue.all_ids())
    rows = {line.split()[0]: line.split() for line in lines}
    assert rows["exp01a"][1:] == [
        "exp01a",
        "configs/exp01_model_scaling.py:exp01a",
        "sudoku_extreme/sub1000_aug1000",
    ]
    assert rows["E2.3b"][1:3] == ["e2_3_attention", "configs/e2_3_attention.py"]
    assert rows["exp04a_100"][3] == "sudoku_extreme/sub100_aug1000"
    assert rows["exp09a"][1] == "e1_1_baseline"  # The study's duplicate of its baseline.
    # E-scheme ids come first, then the 67-config scheme.
    order = [line.split()[0] for line in lines]
    assert order[0] == "E1.1" and order.index("E4.4") < order.index("baseline")


def test_list_cli_with_pattern():
    out = subprocess.run(
        [sys.executable, "sweep.py", "--list", "--pattern=^exp06"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert [line.split()[0] for line in out] == [f"exp06_{c}" for c in "abcdef"]


def test_markdown_matches_readme(capsys):
    assert sweep.main(["--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in (REPO / "configs" / "README.md").read_text()


def test_selection():
    ids = [r.run_id for r in sweep.select([], "exp02")]
    # exp02a_02/_03 and exp02b_02/_03/_04 are E-scheme runs or the baseline: each appears once.
    assert ids == [
        "exp02a_01",
        "e2_2c_t3_n4",
        "e1_1_baseline",
        "exp02a_04",
        "exp02a_05",
        "exp02a_06",
        "exp02b_01",
        "e2_2b_t2_n6",
        "e2_2e_t4_n6",
        "exp02b_05",
    ]
    assert [r.run_id for r in sweep.select([], "^exp1")] == [
        "exp10a",
        "e1_1_baseline",
        "exp10c",
        "exp10d",
        "exp10e",
    ]
    assert [r.run_id for r in runs_of("baseline", "exp01c", "e2.3b", "E1.1")] == [
        "e1_1_baseline",
        "e2_3_attention",
    ]
    assert [r.run_id for r in sweep.select([], "exp0[")] == []  # invalid regex: substring
    with pytest.raises(KeyError):
        runs_of("exp99")


def test_dry_run_prints_exact_commands(tmp_path, capsys):
    done = tmp_path / "e2_1_ema_off"
    done.mkdir()
    (done / "run_summary.json").write_text('{"status": "finished"}')
    code = sweep.main(
        [
            "exp09e",
            "E2.1b",
            "exp06_a",
            f"--workdir_root={tmp_path}",
            "--dry-run",
            "--tpu=local",
            "--data_dir=gs://b/tfds",
            "--config_arg=runlocal",
            "--extra=--config.train.total_steps=10 --mode=train",
            "--launcher=python launch.py",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"python launch.py --config=configs/exp09_optimizer.py:exp09e,runlocal "
        f"--workdir={tmp_path}/exp09e --tpu=local --config.data.data_dir=gs://b/tfds "
        "--config.train.total_steps=10 --mode=train",
        f"# skip e2_1_ema_off: {tmp_path}/e2_1_ema_off/run_summary.json says finished",
        f"python launch.py --config=configs/exp06_batch_size.py:exp06_a,runlocal "
        f"--workdir={tmp_path}/exp06_a --tpu=local --config.data.data_dir=gs://b/tfds "
        "--config.train.total_steps=10 --mode=train",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2_1_ema_off"]  # nothing written


def test_usage_errors(capsys):
    for argv in (["--workdir_root=/tmp/x"], ["exp01a"], ["exp99", "--workdir_root=/tmp/x"]):
        with pytest.raises(SystemExit) as e:
            sweep.main(argv)
        assert e.value.code == 2
    capsys.readouterr()


def test_runs_skips_finished_and_resumes_others(tmp_path, fake):
    launcher, launched = fake
    root = tmp_path / "runs"
    finished = root / "e1_1_baseline"
    finished.mkdir(parents=True)
    (finished / "run_summary.json").write_text('{"status": "finished", "wall_time_s": 99.0}')
    (finished / "eval_results.json").write_text(
        '{"latest": {"step": 7, "exact_accuracy": 0.8}, "history": []}'
    )
    partial = root / "exp01a"
    partial.mkdir()
    (partial / "run_summary.json").write_text('{"status": "running", "step": 3}')
    (partial / "launch.log").write_text("earlier launch\n")
    out = io.StringIO()
    code = sweep.run_sweep(
        runs_of("exp01c", "exp01a", "exp01b"), str(root), launcher, config_arg="runlocal", out=out
    )
    assert code == 0
    calls = launched()
    # The finished run is not launched again; the interrupted one is (launch.py resumes it).
    assert [c[1] for c in calls] == [f"--workdir={root}/exp01a", f"--workdir={root}/exp01b"]
    assert calls[0][0] == "--config=configs/exp01_model_scaling.py:exp01a,runlocal"
    log = (partial / "launch.log").read_text()
    assert log.startswith("earlier launch\n=== ")  # appended, not overwritten
    assert f"fake training exp01a cwd {REPO}" in log and "exit code 0" in log
    assert "[exp01b] fake training exp01b" in out.getvalue()

    s = summary(root)
    recs = {r["id"]: r for r in s["runs"]}
    assert [r["id"] for r in s["runs"]] == ["e1_1_baseline", "exp01a", "exp01b"]
    assert recs["e1_1_baseline"]["status"] == "finished" and recs["e1_1_baseline"]["skipped"]
    assert recs["e1_1_baseline"]["duration_s"] == 99.0
    assert recs["e1_1_baseline"]["final"] == {"step": 7, "exact_accuracy": 0.8}
    for rid in ("exp01a", "exp01b"):
        r = recs[rid]
        assert r["status"] == "finished" and r["returncode"] == 0 and not r["skipped"]
        assert r["workdir"] == f"{root}/{rid}" and r["log"] == f"{root}/{rid}/launch.log"
        assert isinstance(r["duration_s"], float) and r["duration_s"] > 0
        # Final metrics = the full evaluation with the largest step, not the subset "latest".
        assert r["final"] == {"step": 5, "full": True, "exact_accuracy": 0.4}
    assert recs["exp01a"]["study_ids"] == ["exp01a"]

    # A second sweep skips everything and keeps the records.
    assert sweep.run_sweep(runs_of("exp01a"), str(root), launcher, out=io.StringIO()) == 0
    assert len(launched()) == 2
    assert len(summary(root)["runs"]) == 3


def test_failure_stops_the_sweep(tmp_path, fake, monkeypatch):
    launcher, launched = fake
    monkeypatch.setenv("FAKE_FAIL", "exp09b")
    out = io.StringIO()
    code = sweep.run_sweep(runs_of("exp09b", "exp09c", "exp09d"), str(tmp_path), launcher, out=out)
    assert code == 1
    assert len(launched()) == 1
    recs = {r["id"]: r for r in summary(tmp_path)["runs"]}
    assert recs["exp09b"]["status"] == "failed" and recs["exp09b"]["returncode"] == 3
    assert recs["exp09b"]["final"] == {}
    assert recs["exp09c"]["status"] == recs["exp09d"]["status"] == "not_run"
    assert "boom" in (tmp_path / "exp09b" / "launch.log").read_text()
    assert "2 not run" in out.getvalue()


def test_continue_on_failure(tmp_path, fake, monkeypatch):
    launcher, launched = fake
    monkeypatch.setenv("FAKE_FAIL", "exp09b")
    monkeypatch.setenv("FAKE_INCOMPLETE", "exp09d")
    code = sweep.run_sweep(
        runs_of("exp09b", "exp09c", "exp09d"),
        str(tmp_path),
        launcher,
        continue_on_failure=True,
        out=io.StringIO(),
    )
    assert code == 1
    assert len(launched()) == 3
    status = {r["id"]: r["status"] for r in summary(tmp_path)["runs"]}
    # Exit code 0 without a finished run_summary.json is not success.
    assert status == {"exp09b": "failed", "exp09c": "finished", "exp09d": "incomplete"}


def test_missing_launcher_is_a_failure(tmp_path):
    code = sweep.run_sweep(
        runs_of("exp10a"), str(tmp_path), ["/nonexistent/launcher"], out=io.StringIO()
    )
    assert code == 1
    (rec,) = summary(tmp_path)["runs"]
    assert rec["status"] == "failed" and rec["returncode"] == 127


def test_seeds_run_every_id_under_every_seed_and_resume(tmp_path, fake, monkeypatch):
    launcher, launched = fake
    root = tmp_path / "runs"
    monkeypatch.setenv("FAKE_FAIL", "exp09c-seed1")
    out = io.StringIO()
    code = sweep.run_sweep(
        runs_of("exp09b", "exp09c"),
        str(root),
        launcher,
        config_arg="runlocal",
        seeds=[0, 1],
        continue_on_failure=True,
        out=out,
    )
    assert code == 1
    calls = launched()
    names = ["exp09b-seed0", "exp09b-seed1", "exp09c-seed0", "exp09c-seed1"]
    assert [c[1] for c in calls] == [f"--workdir={root}/{n}" for n in names]
    # The seed reaches launch.py as a config-string item after the variant and runlocal.
    assert calls[1][0].endswith(":exp09b,runlocal,seed=1"), calls[1][0]
    recs = {r["id"]: r for r in summary(root)["runs"]}
    assert [r["id"] for r in summary(root)["runs"]] == names
    assert recs["exp09c-seed1"]["status"] == "failed" and recs["exp09c-seed1"]["seed"] == 1
    assert recs["exp09b-seed0"]["run_id"] == "exp09b" and recs["exp09b-seed0"]["seed"] == 0
    # Re-running resumes: the finished seeds are skipped, the failed one launched again.
    monkeypatch.delenv("FAKE_FAIL")
    assert (
        sweep.run_sweep(
            runs_of("exp09b", "exp09c"), str(root), launcher, seeds=[0, 1], out=io.StringIO()
        )
        == 0
    )
    assert [c[1] for c in launched()[4:]] == [f"--workdir={root}/exp09c-seed1"]


def test_seeds_dry_run_and_usage_errors(tmp_path, capsys):
    code = sweep.main(
        ["E2.1b", "--seeds=0,2", f"--workdir_root={tmp_path}", "--config_arg=runlocal", "--dry-run"]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"runlocal,seed=0 --workdir={tmp_path}/e2_1_ema_off-seed0"), lines[0]
    assert "seed=2" in lines[1] and "e2_1_ema_off-seed2" in lines[1]
    for bad in ("--seeds=a,b", "--seeds=1,1", "--seeds=-1"):
        with pytest.raises(SystemExit) as e:
            sweep.main(["E2.1b", bad, f"--workdir_root={tmp_path}"])
        assert e.value.code == 2
        assert "--seeds=" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.main(["E2.1b", "--seeds=0,1", "--config_arg=seed=3", f"--workdir_root={tmp_path}"])
    assert "exclusive" in capsys.readouterr().err
