r"""Cost model of the full study on Cloud TPU v4: FLOPs per step x steps per experiment -> TPU hours.

  python bench/cost_model.py [--chips=16] [--mfu=0.4] [--peak_tflops=275] [--markdown]

For every run of the catalogue (configs/catalogue.py RUNS) it loads the config, builds the model on CPU
(no data needed) and counts, with the model's own FLOP formula (docs/model.md#flops, matmul FLOPs):
  train FLOPs = flops_per_example(train=True) x global batch x total steps
  eval FLOPs  = flops_per_example(train=False) x eval steps (N_sup) x test examples x number of evals
Steps follow the reference's rule (epochs x groups x mean examples / batch) with the dataset sizes below
(the sizes of the datasets our builders produce; ARC from the measured arc1/arc2_aug1000 builds).
Hours = FLOPs / (chips x peak x MFU). v4: 275 bf16 TFLOP/s per chip; a v4-32 slice has 16 chips.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (train groups, mean train examples per puzzle, test examples) of each dataset family.
DATASETS = {
    "sudoku_extreme/sub": None,  # groups = N from the config name, 1 example per puzzle
    "sudoku_extreme/full_aug0": (3_831_994, 1.0, 422_786),
    "maze_hard/hard": (1000, 1.0, 1000),
    "maze_hard/hard_aug8": (1000, 1.0, 1000),
    "arc_agi/arc1_aug1000": (960, 3_633_417 / 876_405, 385_813),
    "arc_agi/arc2_aug1000": (1280, 5_163_257 / 1_191_723, 170_393),
}
SUDOKU_TEST = 422_786


def dataset_sizes(name: str) -> tuple[int, float, int]:
    if name.startswith("sudoku_extreme/sub"):
        n = int(name.split("sub")[1].split("_")[0])
        return n, 1.0, SUDOKU_TEST
    if name not in DATASETS:
        raise KeyError(f"no size known for {name}")
    return DATASETS[name]


def load_config(path: str, arg: str):
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg or None)


def run_cost(run, chips: int, peak: float, mfu: float) -> dict:
    from trm_tf.models import build_model

    c = load_config(run.config, run.variant)
    groups, mean_ex, n_test = dataset_sizes(run.dataset)
    vocab, seq = {"sudoku_extreme": (11, 81), "maze_hard": (6, 900), "arc_agi": (12, 900)}[
        run.dataset.split("/")[0]
    ]
    model = build_model(c.model, vocab_size=vocab, seq_len=seq, num_puzzle_identifiers=1)
    per_epoch = groups * mean_ex / c.train.global_batch_size
    steps = c.train.total_steps or int(c.train.epochs * per_epoch)
    n_evals = max(1, int(c.train.epochs // max(c.train.eval_interval_epochs, 1)))
    n_sup_eval = c.eval.halt_max_steps or c.act.halt_max_steps
    train = model.flops_per_example(train=True) * c.train.global_batch_size * steps
    evals = model.flops_per_example(train=False) * n_sup_eval * n_test * n_evals
    rate = chips * peak * 1e12 * mfu
    return {
        "run": run.run_id,
        "dataset": run.dataset,
        "params_M": model.num_params() / 1e6,
        "steps": steps,
        "train_PFLOP": train / 1e15,
        "eval_PFLOP": evals / 1e15,
        "hours": (train + evals) / rate / 3600,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", type=int, default=16, help="TPU v4 chips (v4-32 = 16)")
    p.add_argument("--peak_tflops", type=float, default=275.0, help="bf16 peak per chip")
    p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOP utilisation")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--pattern", default="", help="only runs whose id contains this")
    a = p.parse_args()
    from configs import catalogue

    rows = []
    for run in catalogue.RUNS:
        if a.pattern and a.pattern not in run.run_id:
            continue
        try:
            rows.append(run_cost(run, a.chips, a.peak_tflops, a.mfu))
        except KeyError as e:
            rows.append({"run": run.run_id, "dataset": run.dataset, "error": str(e)})
    total = sum(r.get("hours", 0.0) for r in rows)
    if a.markdown:
        print(
            f"| run | dataset | params (M) | steps | train PFLOP | eval PFLOP | hours on {a.chips} v4 "
            f"chips @ {a.mfu:.0%} MFU |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                print(f"| {r['run']} | {r['dataset']} | – | – | – | – | ({r['error']}) |")
                continue
            print(
                f"| {r['run']} | {r['dataset']} | {r['params_M']:.2f} | {r['steps']:,} | "
                f"{r['train_PFLOP']:,.0f} | {r['eval_PFLOP']:,.0f} | {r['hours']:.2f} |"
            )
        print(f"| **total** | | | | | | **{total:.1f}** |")
    else:
        for r in rows:
            print(json.dumps(r))
        print(json.dumps({"total_hours": total, "chips": a.chips, "mfu": a.mfu}))


if __name__ == "__main__":
    main()
