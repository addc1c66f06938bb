r"""Cost model of the full study on Cloud TPU v4: a roofline step time per run from its lowered train step.

  python bench/cost_model.py [--runs=E1.1,E2.3b,paper_arc1] [--markdown] [--whatif] [--refresh]
  python bench/cost_model.py --questions --grant_days=30 --slice=v4-32 [--seeds=3] [--runs=E4.1] --markdown

For every run of the catalogue (configs/catalogue.py RUNS):
  * the target slice is the smallest v4 slice its global batch fits on (trm_tf.memory's estimate), and
    the per-chip batch = global batch / chips of that slice;
  * ONE supervision train step, as the Trainer runs it on a replica (ACT carry reset, forward and
    backward, AdamATan2/AdamW/Lion, sparse sign-SGD on the puzzle rows, EMA, carry write-back), is
    lowered to HLO at that per-chip batch with `experimental_get_compiler_ir(stage="hlo")`. Nothing is
    compiled or run. bench/hlo_cost.py counts its FLOPs, MXU-padded FLOPs, HBM bytes and their (8,128)
    tile padding and gives the roofline step time on one v4 chip (275 bf16 TFLOP/s, 1.2 TB/s HBM) plus
    the gradient all-reduce over the slice (4 bytes per parameter, ring, 1.1 PB/s / 4096 chips);
  * steps follow the reference's rule (epochs x groups x mean examples / batch) with the dataset sizes
    below; evaluations (every eval_interval epochs, all N_sup steps, full test set) are counted with the
    model's FLOP formula at the train step's predicted MFU (the eval step is forward-only and not lowered);
  * hours on the target slice at the predicted step time, next to the old planning figure: the same
    FLOPs at a flat 40% MFU.

The puzzle-embedding table is lowered with 2 rows: its traffic is the gathered and updated rows of the
batch, not the table, so its size does not change the step. A curriculum run is costed at its final
(deepest) stage, an upper bound. The lowering takes 30 s - 3 min per distinct shape on a CPU; results are
cached by shape in bench/hlo_costs.json (`--refresh` re-lowers), so the table reprints in seconds.

`--questions` costs one seed of the arms of each question of the study (configs/catalogue.py QUESTIONS)
and of the `--runs` given as extras, and says how many seeds a grant of `--slice` for `--grant_days`
affords: per question alone, for all questions with equal seeds (each distinct run once: the baseline
is shared), and what is left after `--seeds` seeds of every question and extra run (`seed_plan`).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import hlo_cost  # noqa: E402

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
FLAT_MFU = 0.4
CACHE = os.path.join(REPO, "bench", "hlo_costs.json")
CACHE_VERSION = (
    1  # bump when hlo_cost's counting rules change: cached entries of another version are redone
)


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


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a run trains: slice name, chips (= replicas) and examples per chip."""

    slice_name: str
    chips: int
    per_chip_batch: int


def target_slice(config, dataset: str) -> Target:
    """The smallest v4 slice the config fits on at its global batch (trm_tf.memory's estimate)."""
    from trm_tf import memory
    from trm_tf.data.datasets import dataset_shapes

    seq, vocab, ids = dataset_shapes(dataset)
    rows = memory.slice_table(config, seq, ids, config.train.global_batch_size, vocab_size=vocab)
    best = memory.smallest_fitting_slice(rows)
    if best is None:
        raise ValueError(f"{config.experiment_id} fits no v4 slice as configured")
    return Target(best.slice_name, best.chips, best.per_chip_batch)


def lowering_key(config, seq: int, vocab: int, per_chip_batch: int) -> str:
    """Everything the lowered step's shapes and ops depend on (not learning rates or data sizes)."""
    a, o = config.act, config.optim
    parts = {
        "v": CACHE_VERSION,
        "model": {k: str(v) for k, v in sorted(config.model.items())},
        "act": [a.loss_type, bool(a.q_continue_target), bool(a.recursion_reg), a.get("halt_rule")],
        "optim": [o.name, bool(o.ema)],
        "shape": [seq, vocab, per_chip_batch],
    }
    return json.dumps(parts, sort_keys=True)


def lower_train_step(config, seq: int, vocab: int, per_chip_batch: int) -> str:
    """HLO text of one supervision train step of `config` on one replica at `per_chip_batch`.

    The step is the Trainer's own replica step function (trm_tf.trainer), built under the default
    strategy with the global batch set to the per-chip batch, wrapped in tf.function(jit_compile=True)
    as a TPU compiles it, and lowered from TensorSpecs: no data, no compilation, no execution.
    """
    import keras
    import tensorflow as tf

    from trm_tf.data.spec import DatasetSpec
    from trm_tf.trainer import Trainer

    c = config.copy_and_resolve_references()
    c.train.global_batch_size = per_chip_batch
    spec = DatasetSpec("cost/model", "", seq, vocab, 2, 0, -100, 0, 1, 1.0, 1, 1, (1,), {})
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=1000)
    step_fn = trainer._make_step_fn(trainer._core_for_stage(len(trainer.stages) - 1))

    def step(inputs, labels, puzzle_identifiers):
        step_fn({"inputs": inputs, "labels": labels, "puzzle_identifiers": puzzle_identifiers})

    b = per_chip_batch
    specs = (
        tf.TensorSpec([b, seq], tf.int32),
        tf.TensorSpec([b, seq], tf.int32),
        tf.TensorSpec([b], tf.int32),
    )
    text = tf.function(step, jit_compile=True).experimental_get_compiler_ir(*specs)(stage="hlo")
    del trainer
    keras.backend.clear_session()
    gc.collect()
    return text


class CostCache:
    """HloCost totals by `lowering_key`, in a JSON file (tf.io.gfile, so gs:// works)."""

    def __init__(self, path: str, refresh: bool = False, lower: bool = True):
        import tensorflow as tf

        self.path, self.refresh, self.lower = path, refresh, lower
        self.entries, self.done = {}, set()
        if path and tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                self.entries = json.load(f)

    def get(self, config, seq: int, vocab: int, per_chip_batch: int) -> hlo_cost.HloCost | None:
        key = lowering_key(config, seq, vocab, per_chip_batch)
        if key in self.entries and (not self.refresh or key in self.done):
            return hlo_cost.HloCost(**self.entries[key])
        if not self.lower:
            return None
        cost = hlo_cost.hlo_cost(lower_train_step(config, seq, vocab, per_chip_batch))
        self.entries[key] = cost.as_dict()
        self.done.add(key)
        self.save()
        return cost

    def save(self) -> None:
        import tensorflow as tf

        if self.path:
            with tf.io.gfile.GFile(self.path, "w") as f:
                json.dump(self.entries, f, indent=0, sort_keys=True)


def cost_row(run, c, target: Target, cache: CostCache, peak: float, hbm_bw: float) -> dict:
    """Step cost, predicted step time and hours of `run` trained with config `c` on `target`."""
    from trm_tf.data.datasets import dataset_shapes
    from trm_tf.models import build_model
    from trm_tf.models.flops import flops_per_example

    groups, mean_ex, n_test = dataset_sizes(run.dataset)
    seq, vocab, _ = dataset_shapes(run.dataset)
    model = build_model(c.model, vocab_size=vocab, seq_len=seq, num_puzzle_identifiers=1)
    g = c.train.global_batch_size
    steps = c.train.total_steps or int(c.train.epochs * groups * mean_ex / g)
    n_evals = max(1, int(c.train.epochs // max(c.train.eval_interval_epochs, 1)))
    n_sup_eval = c.eval.halt_max_steps or c.act.halt_max_steps
    train = flops_per_example(model, train=True) * g * steps
    evals = flops_per_example(model, train=False) * n_sup_eval * n_test * n_evals
    row = {
        "run": run.run_id,
        "dataset": run.dataset,
        "slice": target.slice_name,
        "chips": target.chips,
        "per_chip_batch": target.per_chip_batch,
        "seq": model.total_len,
        "params_M": model.num_params() / 1e6,
        "steps": steps,
        "train_PFLOP": train / 1e15,
        "eval_PFLOP": evals / 1e15,
        "formula_GFLOP_step": flops_per_example(model, train=True) * target.per_chip_batch / 1e9,
        "hours_flat": (train + evals) / (target.chips * peak * FLAT_MFU) / 3600,
    }
    cost = cache.get(c, seq, vocab, target.per_chip_batch)
    if cost is None:
        return row
    comm = hlo_cost.allreduce_seconds(4 * model.num_params(), target.chips)
    roof = hlo_cost.roofline(cost, comm, peak, hbm_bw)
    eval_s = evals / (target.chips * peak * roof["mfu"])
    row.update(
        hlo_GFLOP_step=cost.flops / 1e9,
        padded_GFLOP_step=cost.flops_padded / 1e9,
        GB_step=cost.bytes / 1e9,
        padded_GB_step=cost.bytes_padded / 1e9,
        intensity=roof["intensity"],
        bound=roof["bound"],
        comm_ms=comm * 1e3,
        step_ms=roof["step_s"] * 1e3,
        mfu=roof["mfu"],
        hours=(steps * roof["step_s"] + eval_s) / 3600,
    )
    return row


def run_cost(
    run, cache: CostCache, peak: float = hlo_cost.V4_PEAK_FLOPS, hbm_bw=hlo_cost.V4_HBM_BW
):
    """`cost_row` of a catalogue run as configured, on its target slice."""
    c = load_config(run.config, run.variant)
    return cost_row(run, c, target_slice(c, run.dataset), cache, peak, hbm_bw)


def whatif_rows(run, cache: CostCache, peak=hlo_cost.V4_PEAK_FLOPS, hbm_bw=hlo_cost.V4_HBM_BW):
    """The run as configured, then: the puzzle prefix cut so that the sequence is a multiple of 16,
    grown so that it is a multiple of 128, and twice the per-chip batch on the same slice (global
    batch x2, half the steps for the same epochs; `fits` says whether the memory estimate allows it).
    The prefix variants change the model (MLP-T mixes over every position): costs only."""
    from trm_tf.data.datasets import dataset_shapes
    from trm_tf.memory_estimate import GIB, estimate

    c = load_config(run.config, run.variant)
    t = target_slice(c, run.dataset)
    seq, _, ids = dataset_shapes(run.dataset)
    base = cost_row(run, c, t, cache, peak, hbm_bw)
    rows = [dict(base, variant="as configured", fits=True)]
    prefix = int(base["seq"]) - seq
    for label, total in (("prefix to a multiple of 16", base["seq"] // 16 * 16),
                         ("prefix to a multiple of 128", -(-base["seq"] // 128) * 128)):  # fmt: skip
        if total == base["seq"] or total <= seq:
            continue
        v = c.copy_and_resolve_references()
        v.model.puzzle_emb_len = total - seq
        rows.append(dict(cost_row(run, v, t, cache, peak, hbm_bw), variant=label, fits=True))
        rows[-1]["variant"] = f"prefix {prefix} -> {total - seq} (seq {total})"
    v = c.copy_and_resolve_references()
    v.train.global_batch_size = 2 * c.train.global_batch_size
    est = estimate(v, seq, ids, 2 * t.per_chip_batch)
    fits = est.total <= v.runtime.hbm_gib * GIB
    t2 = dataclasses.replace(t, per_chip_batch=2 * t.per_chip_batch)
    rows.append(
        dict(cost_row(run, v, t2, cache, peak, hbm_bw), variant="2x per-chip batch", fits=fits)
    )
    for r in rows[1:]:
        if "hours" in r and "hours" in base:
            r["saving"] = 1 - r["hours"] / base["hours"]
    return rows


def select_runs(spec: str):
    """Catalogue runs named by a comma list of study ids (E1.1, baseline, ...) or run-id substrings."""
    from configs import catalogue

    if not spec:
        return list(catalogue.RUNS)
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            found = [catalogue.lookup(item)]
        except KeyError:
            found = [r for r in catalogue.RUNS if item in r.run_id]
        if not found:
            raise SystemExit(f"--runs: no run matches {item!r}")
        out.extend(r for r in found if r not in out)
    return out


def _f(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "–"


def markdown(rows: list[dict]) -> str:
    """The per-run table and the totals (chip-hours, and in v4-32 hours = chip-hours / 16)."""
    lines = [
        "| run | slice | per-chip batch | GFLOP/step formula / HLO | padded GFLOP | GB/step (padded) "
        "| FLOP/B | step ms (bound) | MFU | hours (model) | hours @ 40% |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['run']} | ({r['error']}) |" + " |" * 9)
            continue
        lines.append(
            f"| {r['run']} | {r['slice']} | {r['per_chip_batch']} | {r['formula_GFLOP_step']:,.0f} / "
            f"{_f(r, 'hlo_GFLOP_step', ',.0f')} | {_f(r, 'padded_GFLOP_step', ',.0f')} | "
            f"{_f(r, 'GB_step', ',.1f')} ({_f(r, 'padded_GB_step', ',.1f')}) | {_f(r, 'intensity', '.0f')} "
            f"| {_f(r, 'step_ms', ',.1f')} ({r.get('bound', '–')}) | {_f(r, 'mfu', '.0%')} | "
            f"{_f(r, 'hours', ',.2f')} | {r['hours_flat']:,.2f} |"
        )
    t = totals(rows)
    lines.append(
        f"| **total ({t['runs']} runs)** | | | | | | | | | **{t['chip_hours']:,.0f} chip-h "
        f"= {t['chip_hours'] / 16:,.0f} v4-32 h** | **{t['chip_hours_flat']:,.0f} chip-h = "
        f"{t['chip_hours_flat'] / 16:,.0f} v4-32 h** |"
    )
    return "\n".join(lines)


def totals(rows: list[dict]) -> dict:
    ok = [r for r in rows if "hours" in r]
    return {
        "runs": len(ok),
        "chip_hours": sum(r["hours"] * r["chips"] for r in ok),
        "chip_hours_flat": sum(r["hours_flat"] * r["chips"] for r in ok),
    }


def markdown_whatif(rows: list[dict]) -> str:
    lines = [
        "| run | variant | seq | per-chip batch | fits | step ms | MFU | hours | saving |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['variant']} | {r['seq']} | {r['per_chip_batch']} | "
            f"{'yes' if r['fits'] else 'no'} | {_f(r, 'step_ms', ',.1f')} | {_f(r, 'mfu', '.0%')} | "
            f"{_f(r, 'hours', ',.2f')} | {_f(r, 'saving', '+.0%')} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Seeds the grant affords per question (--questions).


@dataclasses.dataclass(frozen=True)
class ArmCost:
    """One seed of one run: its own slice's chips and hours there (`modelled`: from the lowered step;
    False: the formula at a flat 40% MFU because the step is not in the cache)."""

    run: str
    chips: int
    hours: float
    modelled: bool = True

    @property
    def chip_hours(self) -> float:
        return self.chips * self.hours


def grant_chips(slice_name: str) -> int:
    """Chips of a v4 slice name ("v4-32" -> 16)."""
    from trm_tf.memory import V4_SLICES

    size = slice_name.removeprefix("v4-")
    if not size.isdigit() or int(size) not in V4_SLICES:
        raise ValueError(
            f"--slice={slice_name}: expected one of " + ", ".join(f"v4-{n}" for n in V4_SLICES)
        )
    return int(size) // 2


def _seeds(budget: float, per_seed: float) -> int:
    return int(budget / per_seed + 1e-9) if per_seed > 0 else 0


def seed_plan(
    questions: dict[str, list[str]],
    costs: dict[str, ArmCost],
    chips: int,
    hours: float,
    seeds: int = 3,
    extras: tuple[str, ...] = (),
) -> dict:
    """How many seeds a grant of `chips` chips for `hours` hours affords, per question and for all.

    Runs on a slice smaller than the grant's are packed side by side, so a run costs its chip-hours
    (chips of its own slice x hours there) and the grant's slice-hours are chip-hours / `chips`. Every
    run's slice must fit in the grant's and every run must be shorter than the grant.

    Args:
      questions: question key -> run ids of its arms (the baseline included where it is an arm).
      costs: one seed of every run named in `questions` and `extras`.
      chips, hours: the grant (e.g. 16 chips of a v4-32 for 720 hours).
      seeds: the recommended minimum: `seeds` seeds of every question and of every extra run.
      extras: runs of no question, costed at `seeds` seeds in the recommendation.

    Returns a dict: `questions` (per question: runs, chip_hours and slice_hours of one seed, longest run's
    hours, `seeds_alone`: seeds the whole grant affords for that question alone); `all` (every distinct
    run of the questions once, so a baseline shared by several questions counts once: runs, chip_hours,
    slice_hours, `seeds_equal`); `plan` (the recommendation: chip-hours of `seeds` seeds of all questions
    and of the extras, what is `left`, and `more_seeds`: equal seeds of all questions that it buys).
    """
    budget = chips * hours
    named = [r for runs in questions.values() for r in runs] + list(extras)
    for r in named:
        if costs[r].chips > chips:
            raise ValueError(f"{r} needs {costs[r].chips} chips, more than the grant's {chips}")
        if costs[r].hours > hours:
            raise ValueError(
                f"{r} takes {costs[r].hours:.0f} h, longer than the grant's {hours:.0f} h"
            )

    def block(runs):
        ch = sum(costs[r].chip_hours for r in runs)
        return {
            "runs": list(runs),
            "chip_hours": ch,
            "slice_hours": ch / chips,
            "longest_hours": max(costs[r].hours for r in runs),
        }

    per_q = {}
    for key, runs in questions.items():
        per_q[key] = dict(block(runs), seeds_alone=_seeds(budget, block(runs)["chip_hours"]))
    distinct = list(dict.fromkeys(r for runs in questions.values() for r in runs))
    joint = block(distinct)
    joint["seeds_equal"] = _seeds(budget, joint["chip_hours"])
    extra_runs = [r for r in dict.fromkeys(extras) if r not in distinct]
    q_ch = seeds * joint["chip_hours"]
    x_ch = seeds * sum(costs[r].chip_hours for r in extra_runs)
    left = budget - q_ch - x_ch
    plan = {
        "seeds": seeds,
        "questions_chip_hours": q_ch,
        "extras": extra_runs,
        "extras_chip_hours": x_ch,
        "left_chip_hours": left,
        "more_seeds": _seeds(max(left, 0.0), joint["chip_hours"]),
        "fits": left >= 0,
    }
    return {"budget_chip_hours": budget, "questions": per_q, "all": joint, "plan": plan}


def question_costs(cache: CostCache, extras: list, peak: float, hbm_bw: float):
    """The catalogue's QUESTIONS and the runs of `extras`, each run costed once: (question key -> run
    ids, run id -> ArmCost, run id -> the ids naming it: per question key, and under "extra")."""
    from configs import catalogue

    questions, costs, names = {}, {}, {}

    def cost(run):
        if run.run_id not in costs:
            row = run_cost(run, cache, peak, hbm_bw)
            modelled = "hours" in row
            costs[run.run_id] = ArmCost(
                run.run_id, row["chips"], row["hours" if modelled else "hours_flat"], modelled
            )
            print(f"costed {run.run_id}", file=sys.stderr, flush=True)

    for q in catalogue.QUESTIONS:
        questions[q.key] = [r.run_id for r in q.runs()]
        for i in q.ids:
            run = catalogue.lookup(i)
            cost(run)
            names.setdefault(run.run_id, {}).setdefault(q.key, []).append(i)
    for run in extras:
        cost(run)
        names.setdefault(run.run_id, {})["extra"] = list(run.ids[:1]) or ["–"]
    return questions, costs, names


def markdown_seeds(plan: dict, costs: dict, names: dict, slice_name: str, days: float) -> str:
    """The three tables of --questions: the questions, the recommendation, every candidate run."""
    from configs import catalogue

    chips = grant_chips(slice_name)
    budget = plan["budget_chip_hours"]
    base = catalogue.lookup("E1.1").run_id
    titles = {q.key: q.title for q in catalogue.QUESTIONS}
    star = {r: "" if c.modelled else "\\*" for r, c in costs.items()}
    sh = f"{slice_name} h"
    lines = [
        f"Grant: {slice_name} ({chips} chips) for {days:g} days = {budget:,.0f} chip-h. A run on a "
        f"smaller slice is packed beside others: it costs its chip-hours (chips of its own slice x hours "
        f"there), and {sh} = chip-h / {chips}.",
        "",
        f"| question | arms (distinct runs) | baseline | chip-h per seed | {sh} per seed | longest run h "
        "| seeds the grant affords |",
        "|---|---|---|---|---|---|---|",
    ]
    users = [k for k, q in plan["questions"].items() if base in q["runs"]]
    for key, q in plan["questions"].items():
        arms = ", ".join("=".join(names[r][key]) + star[r] for r in q["runs"])
        shared = ", ".join(k for k in users if k != key)
        b = "=".join(names[base][key]) if base in q["runs"] else "no"
        if base in q["runs"] and shared:
            b += f", shared with {shared}"
        lines.append(
            f"| {key}: {titles[key]} | {arms} ({len(q['runs'])}) | {b} | {q['chip_hours']:,.1f} | "
            f"{q['slice_hours']:,.2f} | {q['longest_hours']:,.2f} | (a) {q['seeds_alone']:,} alone |"
        )
    j = plan["all"]
    lines.append(
        f"| **{', '.join(plan['questions'])} together** | every distinct run once "
        f"({len(j['runs'])}) | counted once | {j['chip_hours']:,.1f} | {j['slice_hours']:,.2f} | "
        f"{j['longest_hours']:,.2f} | **(b) {j['seeds_equal']:,} each** |"
    )
    p = plan["plan"]
    k = p["seeds"]

    def row(label, seeds, ch):
        return f"| {label} | {seeds} | {ch:,.0f} | {ch / chips:,.1f} | {ch / budget:.1%} |"

    lines += [
        "",
        f"(c) Recommended: {k} seeds of every question"
        + (" and of each extra run" if p["extras"] else "")
        + ", then more equal seeds of every question with what is left.",
        "",
        f"| allocation | seeds | chip-h | {sh} | share of the grant |",
        "|---|---|---|---|---|",
        row(f"{', '.join(plan['questions'])}: every distinct run", k, p["questions_chip_hours"]),
    ]
    if p["extras"]:
        lines.append(row("extra runs: " + ", ".join(p["extras"]), k, p["extras_chip_hours"]))
    lines.append(row("**left**", "", p["left_chip_hours"]))
    if p["fits"]:
        more = p["more_seeds"]
        label = f"left spent on more seeds of {', '.join(plan['questions'])}"
        lines.append(row(label, f"+{more}", more * j["chip_hours"]))
    lines += [
        "",
        f"| run | ids | question | slice | hours on its slice | chip-h per seed | {sh} per seed | "
        f"chip-h for {k} seeds | share of the grant for {k} seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    shown = [*plan["all"]["runs"], *p["extras"]]
    for r in shown:
        c = costs[r]
        ids = "=".join(dict.fromkeys(i for v in names[r].values() for i in v))
        lines.append(
            f"| {r}{star[r]} | {ids} | {', '.join(names[r])} | v4-{2 * c.chips} | {c.hours:,.2f} | "
            f"{c.chip_hours:,.1f} | {c.chip_hours / chips:,.2f} | {k * c.chip_hours:,.1f} | "
            f"{k * c.chip_hours / budget:.2%} |"
        )
    if not all(costs[r].modelled for r in shown):
        lines += [
            "",
            "\\* step not lowered (not in the cache): the formula's FLOPs at a flat 40% MFU.",
        ]
    return "\n".join(lines)


def main_questions(a, cache: CostCache, peak: float, bw: float) -> None:
    try:
        chips = grant_chips(a.slice)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    extras = select_runs(a.runs) if a.runs else []
    questions, costs, names = question_costs(cache, extras, peak, bw)
    try:
        plan = seed_plan(
            questions, costs, chips, 24 * a.grant_days, a.seeds, tuple(r.run_id for r in extras)
        )
    except ValueError as e:
        raise SystemExit(f"--questions: {e}") from None
    if a.markdown:
        print(markdown_seeds(plan, costs, names, a.slice, a.grant_days))
    else:
        plan["costs"] = {r: dataclasses.asdict(c) for r, c in costs.items()}
        print(json.dumps(plan))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="", help="comma list of study ids or run-id substrings")
    p.add_argument("--peak_tflops", type=float, default=275.0, help="bf16 peak per chip")
    p.add_argument("--hbm_gbps", type=float, default=1200.0, help="HBM bandwidth per chip, GB/s")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--whatif", action="store_true", help="prefix and per-chip batch variants")
    p.add_argument("--cache", default=CACHE, help="JSON cache of lowered step costs ('' = none)")
    p.add_argument("--refresh", action="store_true", help="re-lower shapes already in the cache")
    p.add_argument("--no_lower", action="store_true", help="cached shapes only (others: formula)")
    p.add_argument(
        "--questions",
        action="store_true",
        help="seeds a grant affords per question of the study (--runs: extra runs of no question)",
    )
    p.add_argument(
        "--grant_days", type=float, default=30.0, help="--questions: length of the grant"
    )
    p.add_argument("--slice", default="v4-32", help="--questions: the grant's slice (v4-32, v4-64)")
    p.add_argument(
        "--seeds", type=int, default=3, help="--questions: recommended seeds per question"
    )
    a = p.parse_args()
    cache = CostCache(a.cache, refresh=a.refresh, lower=not a.no_lower)
    peak, bw = a.peak_tflops * 1e12, a.hbm_gbps * 1e9
    if a.questions:
        main_questions(a, cache, peak, bw)
        return
    rows = []
    for run in select_runs(a.runs):
        if a.whatif:
            rows.extend(whatif_rows(run, cache, peak, bw))
            continue
        try:
            rows.append(run_cost(run, cache, peak, bw))
        except (KeyError, ValueError) as e:
            rows.append({"run": run.run_id, "dataset": run.dataset, "error": str(e)})
        print(f"costed {run.run_id}", file=sys.stderr, flush=True)
    if a.markdown:
        print(markdown_whatif(rows) if a.whatif else markdown(rows))
    else:
        for r in rows:
            print(json.dumps(r))
        if not a.whatif:
            print(json.dumps(totals(rows)))


if __name__ == "__main__":
    main()
