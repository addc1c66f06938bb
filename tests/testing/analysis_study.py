"""The fabricated study the analysis tests read: six finished-or-running runs whose sizes, T/n, EMA,
mixer, batch and data vary, with a known accuracy law, plus partial runs (config only, truncated event
file, metrics.jsonl only). `build_study` writes them; tests/analysis/conftest.py makes it a fixture.
"""

import glob
import os

from tests.testing import fake_runs as fake
from trm_tf.analysis import runs

# Known law for the size group: acc = A − B·params^(−C).
A, B, C = 0.9, 120.0, 0.4
PARAMS = [1e6, 2e6, 4e6, 8e6, 16e6, 32e6]
N_RUNS = len(PARAMS)
HIDDEN = [128, 192, 256, 384, 512, 768]
H_CYC = [2, 2, 3, 3, 4, 4]
L_CYC = [2, 6, 2, 6, 2, 6]
EMA = [True, False, True, False, True, True]
MLP_T = [True, True, True, False, False, True]
BATCH = [256, 256, 512, 512, 1024, 1024]
DATA = [
    "sub100_aug10",
    "sub250_aug100",
    "sub500_aug300",
    "sub1000_aug1000",
    "sub2000_aug1000",
    "sub5000_aug2000",
]
FPE = 2.5e10  # flops_per_example_train
NSUP = 4
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def assert_png(path):
    """`path` is a PNG file with a drawn figure in it."""
    assert os.path.basename(path).endswith(".png")
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10_000  # A blank figure is ~3 KB; a drawn one is far bigger.


def final_acc(i):
    return A - B * PARAMS[i] ** (-C)


def subset_acc(i):
    # Run 1's periodic (subset) eval beats its final full eval: best must differ from final.
    return final_acc(i) + (0.05 if i == 1 else -0.1)


def _evals(i: int) -> dict:
    """Eval scalars of run i: a subset eval at step 100, the full one at 200 (and a late subset at 300)."""

    def at(acc, lm_loss):
        steps = {f"exact_accuracy/step_{k}": acc * k / NSUP for k in range(1, NSUP + 1)}
        return {"exact_accuracy": acc, "lm_loss": lm_loss, **steps}

    evals = {100: at(subset_acc(i), 1.0), 200: at(final_acc(i), 0.5 + 0.01 * i)}
    if i == 2:  # A later subset eval after the last full one must not become "final".
        evals[300] = {"exact_accuracy": 0.01, "lm_loss": 3.0}
    return evals


def _summary(i: int, steps: int) -> dict:
    return {
        "status": "running" if i == 5 else "finished",
        "step": steps,
        "total_steps": 300,
        "wall_time_s": 3600.0 * (i + 1),
        "examples_per_s": 1000.0 * BATCH[i] / 256,
        "num_params": PARAMS[i],
        "flops_per_example_train": FPE,
        "flops_per_example_eval": 16 * FPE,
        "num_replicas": 1,
        "device_kind": "cpu",
    }


def make_group(root):
    paths = []
    for i in range(N_RUNS):
        evals = _evals(i)
        train = {
            s: {
                "loss": 2.0 / s,
                "exact_accuracy": 0.5 + i / 100 + s / 1000,
                "examples_per_s": 1000.0 * BATCH[i] / 256 + s,
            }
            for s in (50, 100, 150, 200)
        }
        overrides = {
            "model.hidden_size": HIDDEN[i],
            "model.H_cycles": H_CYC[i],
            "model.L_cycles": L_CYC[i],
            "act.halt_max_steps": NSUP,
            "optim.ema": EMA[i],
            "model.mlp_t": MLP_T[i],
            "model.pos_encodings": "none" if MLP_T[i] else "rope",
            "train.global_batch_size": BATCH[i],
            "data.config": DATA[i],
        }
        name = f"exp_{chr(ord('a') + i)}"
        paths.append(
            fake.make_fake_run(
                os.path.join(root, name),
                experiment_id=name,
                overrides=overrides,
                train=train,
                evals=evals,
                full_eval_steps=(200,),
                summary=_summary(i, max(evals)),
            )
        )
    return paths


def build_study(root) -> dict:
    group = str(root / "group")
    make_group(group)
    partial = str(root / "partial")
    # Just started: only config.json.
    fake.make_fake_run(os.path.join(partial, "p_config_only"), experiment_id="p_config_only")
    # Events cut mid-record (preempted writer), no summary, no eval_results.json.
    w = fake.make_fake_run(
        os.path.join(partial, "p_truncated"),
        experiment_id="p_truncated",
        train={10: {"loss": 3.0}, 20: {"loss": 2.0}},
        evals={20: {"exact_accuracy": 0.25}, 40: {"exact_accuracy": 0.5}},
        write_jsonl=False,
        write_eval_results=False,
    )
    ev = glob.glob(os.path.join(w, "eval", "events.out.tfevents.*"))[0]
    with open(ev, "rb") as f:
        data = f.read()
    with open(ev, "wb") as f:
        f.write(data[:-5])
    # metrics.jsonl only (no event files), with a last line cut mid-write.
    w = fake.make_fake_run(
        os.path.join(partial, "p_jsonl"),
        experiment_id="p_jsonl",
        train={5: {"loss": 1.5}, 10: {"loss": 1.25}},
        evals={10: {"exact_accuracy": 0.125}},
        write_events=False,
        write_eval_results=False,
    )
    with open(os.path.join(w, "metrics.jsonl"), "a") as f:
        f.write('{"split": "train", "step": 15, "lo')
    df = runs.load_runs([os.path.join(group, "*")])
    return {"root": str(root), "group": group, "partial": partial, "df": df}
