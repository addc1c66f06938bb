"""Every command that BUILD.md, scripts/README.md, docs/datasets.md and RESULTS.md show in their ```bash
blocks (and README.md's `scripts/` lines) is run or checked here, so a document that drifts from the
scripts fails CI.

* `scripts/*.sh ...`: run with `--dry-run` against a fake slice (fake gcloud and gsutil first on PATH,
  conftest.py), exit 0, and no gcloud call at all; a command that starts a run (launch_pod.sh,
  run_batch.sh) must hand launch.py a gs:// workdir and a gs:// data_dir, and that launch.py command
  line is checked like the documented ones;
* `python launch.py ...`: every flag exists, the config file exists and each `--config.FIELD=` override
  names a field of that config (loaded as launch.py loads it; TensorFlow is not imported);
* `python sweep.py ...`: run with `--dry-run`, and each launch.py command it prints checked as above;
* `python bench/cost_model.py ...`: run with `--no_lower` (never lowering a step here), exit 0, and every
  run it shows costed from a lowered step of the cache bench/hlo_costs.json (none at the formula);
* `$(scripts/X.sh ...)` inside a command: run with `--dry-run`, its output substituted;
* anything else must be in ALLOWED, with the reason it is not run here (an entry no command uses fails).

The `python launch.py` lines of the configs' docstrings are checked the same way.
"""

import glob
import shlex
import subprocess
import sys

import pytest

from tests.testing.scripts import (
    DOCUMENTS,
    REPO,
    SUBSTITUTION,
    check_launch_command,
    fenced_commands,
    launched_commands,
    run,
)

# Command prefixes that are not run here, and why.
ALLOWED = {
    "gcloud storage buckets create": "creates a real bucket; gcloud has no dry run for it",
    "python3 -m venv": "sets up a local environment (the CI job itself does this)",
    "source .venv/bin/activate": "sets up a local environment (the CI job itself does this)",
    "pip install": "installs packages (the CI job installs the same requirements files)",
    "python -m pytest": "the test suite itself",
    "sed '/^tensorflow-cpu/d' requirements.txt": "TPU VM install step (setup_workers.sh runs it, "
    "tests/scripts/tpu_vm_test.py checks its command)",
    'python -c "import tensorflow as tf; r=tf.distribute.cluster_resolver.TPUClusterResolver('
    "'local')": "needs a TPU VM's chips (check_tpu.py's test covers the trainer's path)",
    "tfds build": "builds a dataset (downloads, or minutes of CPU); tests/data tests build tiny ones",
    "python -m trm_tf.data.prepare": "builds a dataset; the data tests run prepare on tiny ones",
    "python -m trm_tf.data.cache": "writes a dataset's decoded cache; the cache tests run it",
    "tensorboard": "starts a server",
    "python -m trm_tf.tools.solve": "needs a trained checkpoint; tests/tools tests run it",
    "python -m trm_tf.tools.render": "needs a solver dump; tests/tools tests run it",
    "python -m trm_tf.tools.average_checkpoints": "needs a run's checkpoints; its tests run it",
    "python -m trm_tf.analysis": "needs finished runs; the analysis tests run it",
    "python -m trm_tf.tools.by_rating": "needs trained runs on a rated build; tests/tools/by_rating_test.py "
    "runs its CLI",
    "python -m tfds_builders.sudoku_extreme.ratings": "generates 2,000 puzzles (minutes); "
    "tfds_builders/sudoku_extreme/ratings_test.py runs each documented one and compares its output "
    "with the document",
}

COMMANDS = [(doc, n, cmd) for doc in DOCUMENTS for n, cmd in fenced_commands(REPO / doc)]
COMMANDS += [
    (doc, n, cmd) for doc in ("README.md",) for n, cmd in fenced_commands(REPO / doc, True)
]


def kind(cmd: str) -> str:
    argv = shlex.split(SUBSTITUTION.sub("SUBST", cmd), comments=True)
    if argv[0].startswith("scripts/") and argv[0].endswith(".sh"):
        return "script"
    if argv[0] in ("python", "python3") and argv[1:2] in (["launch.py"], ["sweep.py"]):
        return argv[1]
    if argv[0] in ("python", "python3") and argv[1:2] == ["bench/cost_model.py"]:
        return "cost_model"
    prefix = next((p for p in ALLOWED if cmd.startswith(p)), None)
    assert prefix, f"{cmd!r} is neither run nor in ALLOWED (add it with the reason it is not run)"
    return "allowed"


def test_the_documents_show_the_commands_that_matter():
    kinds = [kind(cmd) for _, _, cmd in COMMANDS]
    assert kinds.count("script") >= 15 and kinds.count("launch.py") >= 4, kinds
    assert kinds.count("sweep.py") >= 1
    shown = {shlex.split(c)[0] for _, _, c in COMMANDS if kind(c) == "script"}
    for script in ("create_tpu.sh", "setup_workers.sh", "launch_pod.sh", "run_batch.sh"):
        assert f"scripts/{script}" in shown
    used = {p for _, _, c in COMMANDS for p in ALLOWED if c.startswith(p)}
    assert used == set(ALLOWED), f"ALLOWED entries no document uses: {set(ALLOWED) - used}"


def substitute(cmd: str, env) -> str:
    """Runs each `$(scripts/X.sh ...)` with --dry-run and puts its output in its place."""

    def one(m):
        argv = shlex.split(m.group(1))
        assert argv[0].startswith("scripts/"), f"only script output is substituted: {m.group(0)}"
        res = run(argv[0].removeprefix("scripts/"), *argv[1:], "--dry-run", env=env)
        assert res.returncode == 0, (m.group(0), res.stderr)
        return res.stdout.strip()

    return SUBSTITUTION.sub(one, cmd)


def expand(argv: list[str]) -> list[str]:
    """Glob patterns (configs/e2_*.py) as the shell expands them from the repository root."""
    out = []
    for a in argv:
        if "*" in a and not a.startswith(("-", "gs://")):
            found = sorted(glob.glob(a, root_dir=REPO))
            assert found, f"{a} matches no file"
            out += found
        else:
            out.append(a)
    return out


@pytest.mark.parametrize(
    "doc,line,cmd",
    [c for c in COMMANDS if kind(c[2]) != "allowed"],
    ids=[f"{d}:{n}" for d, n, c in COMMANDS if kind(c) != "allowed"],
)
def test_documented_command(doc, line, cmd, fake_cloud, tmp_path):
    env, state = fake_cloud
    argv = expand(shlex.split(substitute(cmd, env), comments=True))
    if kind(cmd) == "launch.py":
        check_launch_command(argv[2:])
        return
    if kind(cmd) == "sweep.py":
        # The dry run still reads each run's summary; gs://BUCKET would be a network call, and a local
        # root (runs/pilot) may hold this machine's finished runs: both go to an empty directory.
        argv = [a.replace("gs://BUCKET/runs", str(tmp_path / "runs")) for a in argv]
        argv = [
            f"--workdir_root={tmp_path / a.split('=', 1)[1]}"
            if a.startswith("--workdir_root=")
            and "://" not in a
            and not a.startswith("--workdir_root=/")
            else a
            for a in argv
        ]
        dry = [] if "--dry-run" in argv else ["--dry-run"]
        res = subprocess.run(
            [sys.executable, *argv[1:], *dry], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        launches = [shlex.split(x)[2:] for x in res.stdout.splitlines() if " launch.py " in x]
        assert launches, res.stdout
        for launch in launches:
            check_launch_command(launch)
        return
    if kind(cmd) == "cost_model":
        res = subprocess.run(
            [sys.executable, *argv[1:], "--no_lower"], cwd=REPO, env=env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() and "not lowered" not in res.stdout, res.stdout
        return
    script = argv[0].removeprefix("scripts/")
    end = argv.index("--") if "--" in argv else len(argv)  # after "--": launch.py's flags
    res = run(script, *argv[1:end], "--dry-run", *argv[end:], env=env)
    assert res.returncode == 0, f"{doc}:{line}: {cmd}\n{res.stderr}"
    assert not (state / "calls.log").exists(), "a dry run called gcloud"
    if script in ("launch_pod.sh", "run_batch.sh"):
        launches = launched_commands(res.stdout)
        assert launches, res.stdout
        for launch in launches:
            for name in ("--workdir", "--config.data.data_dir"):
                values = [a.split("=", 1)[1] for a in launch if a.startswith(name + "=")]
                assert len(values) == 1 and values[0].startswith("gs://"), (name, launch)
            check_launch_command(launch)


def docstring_launches() -> list[tuple[str, str]]:
    """(config file, command) of every `python launch.py ...` line of the configs' docstrings."""
    out = []
    for path in sorted((REPO / "configs").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        doc = text[: text.find('"""', text.find('"""') + 3)] if text.startswith('"""') else ""
        lines = doc.splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("python launch.py "):
                cmd = line.strip()
                while cmd.endswith("\\"):  # a continuation line
                    i += 1
                    cmd = cmd[:-1] + " " + lines[i].strip()
                out.append((path.name, cmd))
    return out


def test_config_docstring_launch_lines(fake_cloud):
    """The launch line of every config docstring: its flags and overrides exist, and a multi-host slice
    gets its hosts' addresses from scripts/tpu_address.sh (never a bare TPU name). A "..." stands for
    more flags."""
    env, _ = fake_cloud
    lines = docstring_launches()
    assert len(lines) >= 40
    for name, cmd in lines:
        argv = [a for a in shlex.split(substitute(cmd, env), comments=True) if a != "..."]
        tpu = [a.split("=", 1)[1] for a in argv if a.startswith("--tpu=")]
        assert tpu in ([], ["local"], ["grpc://WORKER_IPS:8470"]), (name, cmd)
        check_launch_command(argv[2:])
