"""The start-up refusal of configs whose per-chip HBM estimate cannot fit, and a table of the Cloud TPU
v4 slices a config fits on.

  python -m trm_tf.memory --config=configs/paper_arc1.py
  python -m trm_tf.memory --config=configs/exp06_batch_size.py:exp06_f --hbm_gib=16

The estimate itself (every term and its formula) is `trm_tf.memory_estimate`; the shapes of a dataset
that is not built yet come from its builder (`trm_tf.data.datasets.dataset_shapes`).
"""

from __future__ import annotations

import dataclasses

from trm_tf.memory_estimate import GIB, Inputs, MemoryEstimate, estimate, estimate_inputs

# Cloud TPU v4 slices (v4-N has N TensorCores = N / 2 chips; TF sees one device per chip) and the
# HBM of one v4 chip.
V4_SLICES = (8, 16, 32, 64, 128, 256)
V4_HBM_GIB = 32.0


class MemoryBudgetError(ValueError):
    """The per-chip estimate of a config exceeds the chip's HBM; the message is one line with fixes."""


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _slice_name(chips: int) -> str:
    return f"v4-{2 * chips}" if 2 * chips in V4_SLICES else f"{chips} chips"


def max_fitting_batch(est: MemoryEstimate, hbm_bytes: float) -> int:
    """The largest per-chip batch whose estimate fits in `hbm_bytes` (0 if not even one example)."""
    lo, hi = 0, 1
    while estimate_inputs(est.inputs, hi).total <= hbm_bytes:
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            return lo
    while hi - lo > 1:  # lo fits (or is 0), hi does not
        mid = (lo + hi) // 2
        if estimate_inputs(est.inputs, mid).total <= hbm_bytes:
            lo = mid
        else:
            hi = mid
    return lo


def check_fits(est: MemoryEstimate, hbm_bytes: float, per_chip_batch: int, num_chips: int) -> None:
    """Raises MemoryBudgetError (one line: estimate, budget, largest term, fixes) if `est` exceeds HBM.

    The fixes are re-estimated, not guessed: whether `model.remat` alone fits on the same chips, the
    smallest v4 slice with more chips on which the same global batch (per_chip_batch * num_chips)
    fits (without remat if possible, else with it), and the largest per-chip batch that fits here.

    Args:
      est: from `estimate(config, ..., per_chip_batch)`.
      hbm_bytes: HBM of one chip (`config.runtime.hbm_gib * 2**30`).
      per_chip_batch: the batch `est` was computed for (global batch / num_chips).
      num_chips: chips (= replicas) of the run.
    """
    if est.per_chip_batch != per_chip_batch:
        raise ValueError(
            f"the estimate is for per-chip batch {est.per_chip_batch}, not {per_chip_batch}"
        )
    if est.total <= hbm_bytes:
        return
    largest = est.largest_term()
    head = (
        f"est. {_gib(est.total)} per chip > {_gib(hbm_bytes)} HBM "
        f"({MemoryEstimate.LABELS[largest]} {_gib(getattr(est, largest))})"
    )
    fixes = []
    remat_inputs = dataclasses.replace(est.inputs, remat=True)
    if not est.inputs.remat:
        with_remat = estimate_inputs(remat_inputs, per_chip_batch).total
        verdict = "fits" if with_remat <= hbm_bytes else "not enough alone"
        fixes.append(f"set --config.model.remat=True (est. {_gib(with_remat)}, {verdict})")
    global_batch = per_chip_batch * num_chips
    larger = [
        (size, global_batch // (size // 2))
        for size in V4_SLICES
        if size // 2 > num_chips and global_batch % (size // 2) == 0
    ]
    # The smallest larger slice on which the config fits as it is, else the smallest one with remat.
    for use_remat, label in ((False, "a larger slice"), (True, "a larger slice with remat")):
        inputs = remat_inputs if use_remat else est.inputs
        fit = next(
            (
                (size, pcb, total)
                for size, pcb in larger
                if (total := estimate_inputs(inputs, pcb).total) <= hbm_bytes
            ),
            None,
        )
        if fit:
            size, pcb, total = fit
            fixes.append(f"use {label} (v4-{size}: per-chip batch {pcb}, est. {_gib(total)})")
            break
    best = max_fitting_batch(est, hbm_bytes)
    fixes.append(
        f"or a smaller per-chip batch (<= {best} fits)"
        if best
        else "(not even per-chip batch 1 fits: shrink the model)"
    )
    raise MemoryBudgetError(f"{head}: {', '.join(fixes)}")


@dataclasses.dataclass(frozen=True)
class SliceRow:
    """One v4 slice of `slice_table`: its estimate with and without remat at the same global batch."""

    slice_name: str
    chips: int
    per_chip_batch: int  # 0 when the global batch does not divide over the chips
    estimate: int  # bytes per chip with the config as it is (0 if it does not divide)
    estimate_remat: int  # bytes per chip with model.remat on
    fits: bool
    fits_remat: bool


def slice_table(
    config,
    seq_len: int,
    num_puzzle_identifiers: int,
    global_batch: int,
    hbm_bytes: float = V4_HBM_GIB * GIB,
    vocab_size: int | None = None,
) -> list[SliceRow]:
    """Every v4 slice of `V4_SLICES`: per-chip batch, estimate (as configured and with remat), fits."""
    i = Inputs.from_config(config, seq_len, num_puzzle_identifiers, vocab_size)
    rows = []
    for size in V4_SLICES:
        chips = size // 2
        if global_batch % chips:
            rows.append(SliceRow(f"v4-{size}", chips, 0, 0, 0, False, False))
            continue
        pcb = global_batch // chips
        plain = estimate_inputs(i, pcb).total
        remat = estimate_inputs(dataclasses.replace(i, remat=True), pcb).total
        rows.append(
            SliceRow(f"v4-{size}", chips, pcb, plain, remat, plain <= hbm_bytes, remat <= hbm_bytes)
        )
    return rows


def smallest_fitting_slice(rows: list[SliceRow]) -> SliceRow | None:
    """The first row of `slice_table` on which the config fits as configured (None: none does)."""
    return next((r for r in rows if r.fits), None)


def format_table(rows: list[SliceRow], hbm_bytes: float) -> str:
    """The CLI's plain-text table."""
    lines = [
        f"{'slice':<8} {'chips':>5} {'per-chip batch':>14} {'estimate':>10} {'remat':>10}  fits"
    ]
    for r in rows:
        if not r.per_chip_batch:
            lines.append(
                f"{r.slice_name:<8} {r.chips:>5} {'-':>14} {'-':>10} {'-':>10}  (batch does not divide)"
            )
            continue
        verdict = "yes" if r.fits else ("with remat" if r.fits_remat else "no")
        lines.append(
            f"{r.slice_name:<8} {r.chips:>5} {r.per_chip_batch:>14} {_gib(r.estimate):>10} "
            f"{_gib(r.estimate_remat):>10}  {verdict}"
        )
    lines.append(f"(HBM per chip: {_gib(hbm_bytes)})")
    return "\n".join(lines)


def format_breakdown(est: MemoryEstimate) -> str:
    """One line per term, in GiB."""
    parts = [
        f"  {MemoryEstimate.LABELS[k]:<20} {getattr(est, k) / GIB:8.2f} GiB" for k in est.TERMS
    ]
    return "\n".join([*parts, f"  {'total':<20} {est.total / GIB:8.2f} GiB"])


def _shapes_for(config) -> tuple[int, int, int]:
    """(seq_len, vocab, ids) from the built dataset's metadata if present, else from its builder."""
    import tensorflow as tf  # noqa: PLC0415

    from trm_tf.data.datasets import dataset_shapes, expand_dir, load_spec  # noqa: PLC0415

    name = f"{config.data.name}/{config.data.config}"
    if tf.io.gfile.exists(f"{expand_dir(config.data.data_dir).rstrip('/')}/{name}"):
        spec = load_spec(name, config.data.data_dir)
        return spec.seq_len, spec.vocab_size, spec.num_puzzle_identifiers
    return dataset_shapes(name)


def main(argv) -> None:  # pragma: no cover - exercised through the CLI
    from absl import app, flags  # noqa: PLC0415

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = flags.FLAGS.config
    hbm = flags.FLAGS.hbm_gib * GIB if flags.FLAGS.hbm_gib > 0 else config.runtime.hbm_gib * GIB
    try:
        seq, vocab, ids = _shapes_for(config)
    except KeyError as e:  # not built, and no repository builder knows its shapes
        raise SystemExit(f"trm_tf.memory: {e.args[0]}; build the dataset first") from None
    g = config.train.global_batch_size
    rows = slice_table(config, seq, ids, g, hbm, vocab)
    print(
        f"{config.experiment_id}: {config.data.name}/{config.data.config} (seq {seq}, vocab {vocab}, "
        f"{ids:,} puzzle ids), global batch {g}, remat={config.model.remat}"
    )
    print(format_table(rows, hbm))
    best = smallest_fitting_slice(rows)
    if best is not None:
        print(f"Smallest slice that fits: {best.slice_name}. Estimate there:")
        print(format_breakdown(estimate(config, seq, ids, best.per_chip_batch, vocab)))


if __name__ == "__main__":  # pragma: no cover
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:arg]).")
    flags.DEFINE_float("hbm_gib", 0.0, "HBM per chip in GiB (0 = config.runtime.hbm_gib).")
    flags.mark_flags_as_required(["config"])
    app.run(main)
