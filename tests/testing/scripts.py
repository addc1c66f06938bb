"""Helpers of the tests of the Cloud TPU operation scripts in scripts/: running a script, parsing the
commands of a dry run, and the fake gcloud / gsutil programs (the fixtures are tests/scripts/conftest.py).
"""

import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
BASH_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
EXECUTABLES = [p.name for p in BASH_SCRIPTS if p.name != "lib.sh"]


def run(script, *args, env, cwd=REPO):
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


def commands(stdout, program="gcloud"):
    """Parses the '+ ...' lines of a dry run into argument lists (only those of `program`)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("+ "):
            argv = shlex.split(line[2:].removesuffix(" &"))
            if argv and argv[0] == program:
                out.append(argv)
    return out


def flag(argv, name):
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def batch_summary(stdout):
    """Rows of the run_batch summary as (experiment, result) pairs, and its header line."""
    lines = stdout[stdout.index("=== run_batch summary") :].splitlines()
    return lines[0], [(line[:40].strip(), line[41:].rsplit(None, 1)[0]) for line in lines[2:]]


# What the fake gcloud's `tpu-vm versions list` prints unless $FAKE_VERSIONS says otherwise (one per
# line; the pinned TF 2.20.0 images among them).
FAKE_VERSIONS = [
    "tpu-ubuntu2204-base",
    "tpu-vm-tf-2.19.0-pjrt",
    "tpu-vm-tf-2.19.0-pod-pjrt",
    "tpu-vm-tf-2.20.0-pjrt",
    "tpu-vm-tf-2.20.0-pod-pjrt",
]

FAKE_GCLOUD = """#!{python}
# Fake gcloud: logs its argv, answers `auth list` and `describe`, and plays a TPU worker. A
# launch.py start takes the next line "STATUS RC" of $FAKE_CLOUD/plan: it writes
# {{"status": STATUS}} to the run's WORKDIR/run_summary.json (gs://B/P lives in $FAKE_CLOUD/gcs/B/P;
# STATUS "-" writes nothing) and the poll of RUN.exit then prints RC ("running": never ends).
# RC "startfail" makes the start itself fail with the launch guard's exit code 3.
import json, os, re, shlex, sys
FAKE_VERSIONS = {versions!r}
state = os.environ["FAKE_CLOUD"]
args = sys.argv[1:]
with open(os.path.join(state, "calls.log"), "a") as f:
    f.write(shlex.join(args) + "\\n")
def local(path):
    return os.path.join(state, "gcs", path[5:]) if path.startswith("gs://") else path
if args[:1] == ["auth"]:
    print("me@example.com")
    sys.exit(0)
opts = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
if args[2:5] == ["tpu-vm", "versions", "list"]:
    print(os.environ.get("FAKE_VERSIONS", "\\n".join(FAKE_VERSIONS)))
    sys.exit(0)
if "describe" in args:
    fmt = opts.get("--format", "")
    if "acceleratorType" in fmt:
        print(os.environ.get("FAKE_TYPE", "v4-16"))
    elif "ipAddress" in fmt:
        print("10.0.0.2;10.0.0.3")
    elif "state" in fmt:
        print(os.environ.get("FAKE_QR_STATE", "WAITING_FOR_RESOURCES"))
    sys.exit(0)
cmd = opts.get("--command", "")
if "launch.py" in cmd:
    with open(os.path.join(state, "plan")) as f:
        plan = [line for line in f.read().splitlines() if line.strip()]
    status, rc = plan.pop(0).split()
    with open(os.path.join(state, "plan"), "w") as f:
        f.write("\\n".join(plan) + "\\n")
    if rc == "startfail":
        print("w0: run x is still active; stop it with scripts/pod_stop.sh", file=sys.stderr)
        sys.exit(3)
    workdir = local(re.search(r"launch\\.py .*?--workdir=(\\S+)", cmd).group(1))
    if status != "-":
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "run_summary.json"), "w") as f:
            json.dump({{"status": status, "step": 7}}, f)
    with open(os.path.join(state, "rc"), "w") as f:
        f.write(rc)
    print("w0: started run")
elif ".exit" in cmd:
    with open(os.path.join(state, "rc")) as f:
        print(f.read())
sys.exit(0)
"""

FAKE_GSUTIL = """#!{python}
# Fake gsutil: `gsutil [-q] cat gs://B/P` prints $FAKE_CLOUD/gcs/B/P; `gsutil [-q] cp SRC gs://B/P`
# copies a local file there.
import os, shutil, sys
args = [a for a in sys.argv[1:] if a != "-q"]
def local(path):
    assert path.startswith("gs://"), args
    return os.path.join(os.environ["FAKE_CLOUD"], "gcs", path[5:])
if args[0] == "cp":
    os.makedirs(os.path.dirname(local(args[2])), exist_ok=True)
    shutil.copyfile(args[1], local(args[2]))
    sys.exit(0)
assert args[0] == "cat", args
path = local(args[1])
if not os.path.exists(path):
    sys.exit(1)
sys.stdout.write(open(path).read())
"""


# ----------------------------------------------------------------------------------------------------
# The commands the documentation shows (tests/scripts/documented_commands_test.py).

# Documents whose fenced ```bash blocks are commands; README.md contributes only its `scripts/` lines.
DOCUMENTS = ("BUILD.md", "scripts/README.md", "docs/datasets.md", "RESULTS.md")
# launch.py flags that absl defines itself.
ABSL_FLAGS = {"verbosity", "v", "logtostderr", "alsologtostderr", "log_dir", "flagfile", "undefok"}
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


def fenced_commands(path: Path, only_scripts: bool = False) -> list[tuple[int, str]]:
    """(line number, command) of every command of the ```bash blocks of a markdown file: continuation
    lines joined, comments and blank lines dropped, `a && b` split into two commands."""
    out, block, pending, start = [], None, "", 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            continue
        if block not in ("bash", "sh", "shell"):
            continue
        if not pending:
            start = n
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        text, pending = pending, ""
        words = shlex.split(SUBSTITUTION.sub("SUBST", text), comments=True)
        if not words:
            continue
        for part in re.split(r"\s&&\s", text):
            part = part.strip()
            if part and not part.startswith("#"):
                if not only_scripts or part.startswith("scripts/"):
                    out.append((start, part))
    return out


def launch_flags() -> set[str]:
    """The flags launch.py defines (read from its source, so TensorFlow is not imported)."""
    source = (REPO / "launch.py").read_text()
    names = set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source))
    assert {"config", "workdir", "tpu", "mode", "preflight"} <= names, names
    return names | ABSL_FLAGS


def check_launch_command(argv: list[str]) -> None:
    """Fails unless every flag of a `launch.py` argument list exists, its --config file exists and each
    --config.FIELD=... override names a field of that config (loaded as launch.py loads it)."""
    from absl import flags  # noqa: PLC0415
    from ml_collections import config_flags  # noqa: PLC0415

    known = launch_flags()
    config, overrides = None, []
    for arg in argv:
        assert arg.startswith("--"), f"launch.py takes no positional argument: {arg!r} in {argv}"
        name = arg[2:].split("=", 1)[0]
        if name.startswith("config."):
            overrides.append(arg)
        elif name == "config":
            config = arg.split("=", 1)[1]
        else:
            bare = name[2:] if name.startswith("no") and name[2:] in known else name
            assert bare in known, f"launch.py has no flag --{name} ({argv})"
    assert config, f"no --config in {argv}"
    path = config.split(":", 1)[0]
    assert (REPO / path).is_file(), f"{path} does not exist ({argv})"
    cli = ["launch.py", f"--config={REPO / config}", *overrides]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, "", flag_values=fv, lock_config=True, sys_argv=cli
    )
    fv(cli)  # raises on an unknown field
    fv.config.keys()


def launched_commands(stdout: str) -> list[list[str]]:
    """The `python3 launch.py ...` argument lists inside the ssh commands of a dry run's output."""
    out = []
    for argv in commands(stdout):
        remote = next((a.split("=", 1)[1] for a in argv if a.startswith("--command=")), "")
        m = re.search(r"python3 launch\.py (.*?) > ", remote)
        if m:
            out.append(shlex.split(m.group(1)))
    return out
