"""Benchmark: wall time until the quickstart recipe reaches a target exact accuracy on unseen puzzles, next
to the PyTorch reference trained with the same recipe on the same data.

  python bench/time_to_accuracy.py --side=both --reference=DIR --torch_python=PY [--concurrent] \
      [--target=0.95] [--steps=800] [--eval_every=100] [--stop_at_target] [--data_dir=DIR]

Data: the quickstart's dataset (`sudoku_extreme/generated_easy`: 50,000 generated training puzzles, 1,000
unseen test puzzles), built with the repository's TFDS builder into `--data_dir` (reused when present) and
exported once to NumPy files in the reference's on-disk layout (`<split>/all__inputs.npy`, `..labels`,
`..puzzle_identifiers`, `..puzzle_indices`, `..group_indices`, `dataset.json`), rows in puzzle order.

Ours: `launch.py --config=configs/quickstart.py` as a subprocess in a fresh run directory, with overrides
that leave the training recipe alone: the data dir, the eval cadence (`train.eval_every_steps`) and the
step budget (`train.total_steps`; the quickstart's lr is constant after warm-up, so a longer budget does
not change the steps before it). Each evaluation is read from the run's `metrics.jsonl`.

Reference: `tta_reference_driver.py` run by `--torch_python`, importing the model, loss head, sparse
puzzle-embedding optimizer, EMA helper and data loader from the `--reference` checkout at run time and
running its pretrain.py loop with the recipe below (printed side by side with ours at start; the driver
echoes what it instantiated). Evaluation batch = ours (256); it changes speed, not the result.

Wall time of an evaluation = its record's time.time() minus the moment the side's process was started,
so start-up, data loading, compilation and the evaluations themselves all count (`wall_s`); `train_s`
subtracts the evaluations' own seconds (both sides evaluate at the same steps).

`--concurrent` runs both sides at once, each pinned to its own core (`taskset`) with one compute thread
(OMP/MKL/TF intra- and inter-op = 1): a fair side-by-side on a shared machine. Otherwise the sides run
one after the other with the whole machine each.

Output (stdout, JSON lines): {"recipes": ...}; training progress {"side", "train_step", "train_cell",
"lm_loss"}; one {"side", "step", "wall_s", "train_s", "exact", "cell"} per evaluation; a final {"summary": {side: {"time_to_target_s", ...}, "ratio": ours/reference}}.
Without torch (or without the checkout) a reference run prints {"skipped": reason} and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tta_sides  # noqa: E402

common.setup_path_and_env()

DATASET = "sudoku_extreme/generated_easy"


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", choices=("ours", "reference", "both"), default="both")
    p.add_argument("--concurrent", action="store_true", help="both sides at once, one core each")
    p.add_argument("--cores", default="0,1", help="cores for --concurrent: ours,reference")
    p.add_argument("--reference", default="", help="checkout of TinyRecursiveModels")
    p.add_argument("--torch_python", default="", help="python with torch, einops, pydantic")
    p.add_argument("--reference_compile", action="store_true", help="torch.compile the reference")
    p.add_argument("--target", type=float, default=0.95, help="exact accuracy to reach")
    p.add_argument(
        "--steps", type=int, default=0, help="step budget per side (0: the quickstart's)"
    )
    p.add_argument("--eval_every", type=int, default=100, help="steps between evaluations")
    p.add_argument(
        "--stop_at_target", action="store_true", help="end a side once it reaches --target"
    )
    p.add_argument(
        "--max_minutes", type=float, default=0, help="end a side after this (0: no limit)"
    )
    p.add_argument("--data_dir", default="", help="TFDS dir (default: a reused temp dir)")
    p.add_argument("--workdir", default="", help="where run dirs and the export go (default: temp)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--prepare", action="store_true", help=argparse.SUPPRESS
    )  # the data child process
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------- data


def split_arrays(data_dir: str, split: str, name: str = DATASET) -> dict:
    """Every example of `split` as NumPy arrays sorted by puzzle index (inputs, labels [n, seq] int32;
    puzzle_identifier, puzzle_index, group [n] int32)."""
    import numpy as np
    import tensorflow_datasets as tfds

    from trm_tf.data import datasets

    datasets.import_builder(name.split("/")[0])
    ds = tfds.builder(name, data_dir=data_dir).as_dataset(split=split, shuffle_files=False)
    rows = list(tfds.as_numpy(ds.batch(1 << 16)))
    out = {k: np.concatenate([r[k] for r in rows]).astype(np.int32) for k in rows[0]}
    order = np.argsort(out["puzzle_index"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def reference_layout(arrays: dict) -> dict:
    """The reference's arrays of one set: examples in puzzle order; `puzzle_indices` [P + 1] = first
    example of each puzzle (+ end); `group_indices` [G + 1] = first puzzle of each group (+ end);
    `puzzle_identifiers` [P] = each puzzle's identifier."""
    import numpy as np

    pidx, group = arrays["puzzle_index"], arrays["group"]
    starts = np.flatnonzero(np.r_[True, pidx[1:] != pidx[:-1]])  # first example of each puzzle
    puzzle_group = group[starts]
    gstarts = np.flatnonzero(np.r_[True, puzzle_group[1:] != puzzle_group[:-1]])
    return {
        "inputs": arrays["inputs"],
        "labels": arrays["labels"],
        "puzzle_identifiers": arrays["puzzle_identifier"][starts],
        "puzzle_indices": np.r_[starts, len(pidx)].astype(np.int32),
        "group_indices": np.r_[gstarts, len(starts)].astype(np.int32),
    }


def export_for_reference(data_dir: str, out_dir: str, name: str = DATASET) -> str:
    """Writes both splits in the reference's layout under out_dir (once; a `done` marker guards it)."""
    import numpy as np
    import tensorflow as tf

    from trm_tf.data import datasets

    if tf.io.gfile.exists(os.path.join(out_dir, "done")):
        return out_dir
    spec = datasets.load_spec(name, data_dir)
    md = spec.metadata
    for split in ("train", "test"):
        layout = reference_layout(split_arrays(data_dir, split, name))
        split_dir = os.path.join(out_dir, split)
        tf.io.gfile.makedirs(split_dir)
        for field, arr in layout.items():
            with tf.io.gfile.GFile(os.path.join(split_dir, f"all__{field}.npy"), "wb") as f:
                np.save(f, arr)
        n_puzzles = len(layout["puzzle_identifiers"])
        meta = {
            "pad_id": spec.pad_id,
            "ignore_label_id": spec.ignore_label_id,
            "blank_identifier_id": spec.blank_identifier_id,
            "vocab_size": spec.vocab_size,
            "seq_len": spec.seq_len,
            "num_puzzle_identifiers": spec.num_puzzle_identifiers,
            "total_groups": len(layout["group_indices"]) - 1,
            "mean_puzzle_examples": len(layout["inputs"]) / n_puzzles,
            "total_puzzles": n_puzzles,
            "sets": list(md.get("sets", ["all"])),
        }
        with tf.io.gfile.GFile(os.path.join(split_dir, "dataset.json"), "w") as f:
            json.dump(meta, f)
    with tf.io.gfile.GFile(os.path.join(out_dir, "done"), "w") as f:
        f.write("ok\n")
    return out_dir


# ---------------------------------------------------------------------------------------------- recipes


def our_overrides(data_dir: str, steps: int, eval_every: int) -> dict:
    """Overrides of the quickstart config that leave its training recipe alone."""
    return {
        "data.data_dir": data_dir,
        "train.total_steps": steps,
        "train.eval_every_steps": eval_every,
    }


def our_config(overrides: dict):
    """configs/quickstart.py with `overrides` (validated, as launch.py would see it)."""
    from configs import args, quickstart
    from configs.validation import validate

    c = quickstart.get_config()
    args.apply(c, overrides)
    return validate(c)


def reference_recipe(c, spec) -> dict:
    """The reference's hyper-parameters (its config names) for our config `c` on dataset `spec`."""
    m, a, o, t = c.model, c.act, c.optim, c.train
    model = {
        "batch_size": int(t.global_batch_size),
        "seq_len": spec.seq_len,
        "vocab_size": spec.vocab_size,
        "num_puzzle_identifiers": spec.num_puzzle_identifiers,
        "puzzle_emb_ndim": int(m.puzzle_emb_ndim),
        "puzzle_emb_len": int(m.puzzle_emb_len),
        "H_cycles": int(m.H_cycles),
        "L_cycles": int(m.L_cycles),
        "H_layers": 0,
        "L_layers": int(m.L_layers),
        "hidden_size": int(m.hidden_size),
        "expansion": float(m.expansion),
        "num_heads": int(m.num_heads),
        "pos_encodings": m.pos_encodings,
        "rms_norm_eps": float(m.rms_norm_eps),
        "rope_theta": float(m.rope_theta),
        "halt_max_steps": int(a.halt_max_steps),
        "halt_exploration_prob": float(a.halt_exploration_prob),
        "forward_dtype": m.forward_dtype,
        "mlp_t": bool(m.mlp_t),
        "no_ACT_continue": a.halt_rule == "q_halt" and not a.q_continue_target,
    }
    return {
        "model": model,
        "loss_type": f"{a.loss_type}_cross_entropy",
        "global_batch_size": int(t.global_batch_size),
        "lr": float(o.lr),
        "lr_min_ratio": float(o.lr_min_ratio),
        "lr_warmup_steps": int(o.lr_warmup_steps),
        "weight_decay": float(o.weight_decay),
        "beta1": float(o.beta1),
        "beta2": float(o.beta2),
        "puzzle_emb_lr": float(o.puzzle_emb_lr),
        "puzzle_emb_weight_decay": float(o.puzzle_emb_weight_decay),
        "ema": bool(o.ema),
        "ema_rate": float(o.ema_rate),
    }


def recipe_table(c, recipe: dict) -> str:
    """Both recipes side by side: one line per hyper-parameter (ours by config path, the reference's name)."""
    rows = [(f"model.{k}", k) for k in ("hidden_size", "num_heads", "expansion", "L_layers")]
    rows += [("model.H_cycles (T)", "H_cycles"), ("model.L_cycles (n)", "L_cycles")]
    more = ("mlp_t", "pos_encodings", "puzzle_emb_ndim", "puzzle_emb_len", "forward_dtype")
    rows += [(f"model.{k}", k) for k in more]
    rows += [("act.halt_max_steps (N_sup)", "halt_max_steps")]
    rows += [("act.halt_exploration_prob", "halt_exploration_prob")]
    top = ["global_batch_size", "lr", "lr_warmup_steps", "lr_min_ratio", "weight_decay", "beta1"]
    top += ["beta2", "puzzle_emb_lr", "puzzle_emb_weight_decay", "ema", "ema_rate", "loss_type"]
    flat = c.to_dict()
    lines = [f"{'ours (configs/quickstart.py)':34} {'value':>10}   {'reference':26} {'value':>10}"]
    for ours, theirs in rows:
        path = ours.split(" ")[0].split(".")
        lines.append(
            f"{ours:34} {str(flat[path[0]][path[1]]):>10}   {theirs:26} "
            f"{str(recipe['model'][theirs]):>10}"
        )
    for k in top:
        section = "train" if k == "global_batch_size" else "act" if k == "loss_type" else "optim"
        lines.append(
            f"{section + '.' + k:34} {str(flat[section][k]):>10}   {k:26} {str(recipe[k]):>10}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def torch_ready(args) -> str:
    """Empty when the reference can run, else the reason it cannot."""
    if not args.reference or not os.path.isfile(
        os.path.join(args.reference, "models", "recursive_reasoning", "trm.py")
    ):
        return "--reference is not a TinyRecursiveModels checkout"
    if not args.torch_python:
        return "--torch_python not given"
    probe = [args.torch_python, "-c", "import torch, einops, pydantic"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=300).returncode == 0
    except OSError:
        ok = False
    return "" if ok else f"{args.torch_python} cannot import torch, einops and pydantic"


def prepare(data_dir: str, export: bool) -> dict:
    """Builds the dataset when missing and (with `export`) writes the reference's NumPy export; returns
    what the parent needs. Run in a child process (`--prepare`) so the measuring parent never loads TF."""
    import tensorflow_datasets as tfds

    from trm_tf.data import datasets

    tfds.disable_progress_bar()
    try:
        spec = datasets.load_spec(DATASET, data_dir)
    except datasets.DatasetMissingError:
        common.log(f"building {DATASET} into {data_dir}")
        spec = datasets.build_dataset(DATASET, data_dir)
    out = {k: getattr(spec, k) for k in ("seq_len", "vocab_size", "num_puzzle_identifiers")}
    if export:
        out["export"] = export_for_reference(data_dir, os.path.join(data_dir, "reference_export"))
    return out


def _prepared(data_dir: str, export: bool) -> dict:
    """`prepare` in a child process (its last stdout line)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--prepare", f"--data_dir={data_dir}"]
    out = subprocess.run(
        cmd + (["--side=both"] if export else ["--side=ours"]),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _reference_cfg(args, prepared: dict, recipe: dict, steps: int, eval_batch: int) -> dict:
    """The driver's configuration (see tta_reference_driver.py)."""
    return {
        "reference_dir": os.path.abspath(args.reference),
        "data_dir": prepared["export"],
        "recipe": recipe,
        "seed": args.seed,
        "steps": steps,
        "eval_every": args.eval_every,
        "eval_batch": eval_batch,
        "compile": args.reference_compile,
        "stop_at": args.target if args.stop_at_target else None,
    }


def main(argv=None) -> None:
    """Builds and exports the data, prints both recipes, runs the sides and prints the summary."""
    args = parse_args(argv)
    data_dir = args.data_dir or os.path.join(tempfile.gettempdir(), "trm_tta_tfds")
    if args.prepare:
        common.print_json(prepare(data_dir, export=args.side != "ours"))
        return
    sides = ["ours", "reference"] if args.side == "both" else [args.side]
    if "reference" in sides:
        reason = torch_ready(args)
        if reason:
            common.print_json({"skipped": reason})
            return
    work = args.workdir or tempfile.mkdtemp(prefix="trm_tta_")
    os.makedirs(work, exist_ok=True)
    prepared = _prepared(data_dir, "reference" in sides)
    steps = args.steps or int(our_config({}).train.total_steps)
    overrides = our_overrides(data_dir, steps, args.eval_every)
    config = our_config(overrides)
    recipe = reference_recipe(config, argparse.Namespace(**prepared))
    common.log("recipes side by side:\n" + recipe_table(config, recipe))
    common.print_json(
        {"recipes": {"ours": overrides, "reference": recipe}, "machine": common.machine_info()}
    )
    runs = []
    for i, side in enumerate(sides):
        cores = args.cores.split(",")[i] if args.concurrent else ""
        if side == "ours":
            run_dir = os.path.join(work, f"ours_{time.time_ns()}")
            runs.append(tta_sides.OursRun(overrides, run_dir, cores))
        else:
            cfg = _reference_cfg(args, prepared, recipe, steps, int(config.eval.global_batch_size))
            log_path = os.path.join(work, f"reference_{time.time_ns()}.log")
            runs.append(tta_sides.ReferenceRun(args.torch_python, cfg, log_path, cores))
    stop_at = args.target if args.stop_at_target else None
    tta_sides.run_all(runs, args.concurrent, stop_at, args.max_minutes * 60 or None)
    common.print_json({"summary": tta_sides.summary(runs, args.target)})


if __name__ == "__main__":
    main()
