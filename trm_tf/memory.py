r"""Per-chip HBM estimate of a training config, the start-up refusal of configs that cannot fit, and a
table of the Cloud TPU v4 slices a config fits on.

  python -m trm_tf.memory --config=configs/paper_arc1.py
  python -m trm_tf.memory --config=configs/exp06_batch_size.py:exp06_f --hbm_gib=16

Why: full attention at 916 positions (900 grid cells + 16 puzzle-prefix slots) keeps about 27 MB of
float32 attention probabilities per example for EVERY block call of the with-gradient cycle until the
backward pass has used them. At the paper's global batch 768 on the 4 chips of a v4-8 that alone is
about 50 GB per chip, and XLA only says so with an out-of-memory error after minutes of compilation.
`estimate` + `check_fits` say it in one line at start-up, with the fixes.

What is counted (bytes per chip; on TPU v4 one chip = one replica, which holds a full copy of every
variable and `per_chip_batch` examples). Notation: P = trainable parameters, B = per-chip batch,
S = tokens per example, T = S + puzzle-prefix positions, D = hidden size, h = heads, a = h * (D // h)
(attention inner width), I = SwiGLU width of the channel MLP, I_T = SwiGLU width of the MLP-T token
MLP (over T), V = vocabulary, c = bytes of the compute dtype (`model.forward_dtype`: 2 for bfloat16 /
float16, 4 for float32).

  weights            P * 4 (float32 variables) + P * c when c != 4 (XLA's compute-dtype copies of the
                     weights under a mixed policy) + the non-trainable init vectors.
  gradients          P * 4: one float32 gradient per variable, alive while the optimizer applies them.
  optimizer_slots    P * 4 * slots: 2 for AdamATan2 / AdamW (first and second moment), 1 for Lion.
  ema                P * 4 when `optim.ema` (one float32 shadow per dense weight).
  puzzle_table       num_puzzle_identifiers * puzzle_emb_ndim * 4: the table is replicated on every
                     chip and updated in place by sparse sign-SGD (no slots). 1.8 GB for ARC-AGI-1.
  carry              2 * B * T * D * c * 2 (z_H and z_L, the carried variables and the step's new values
                     before they are assigned) + B * S * 4 * 2 * 2 (the carried and the new batch's
                     int32 inputs and labels).

Activations of ONE supervision step. The first T_cycles - 1 recursion cycles run without gradient,
so they keep nothing; the with-gradient cycle makes `blocks` block calls ((L_cycles + 1) * L_layers for
TRM) whose saved tensors all stay alive until the backward pass reaches them. Per example and per block
call the backward reads (elementwise chains are assumed fused by XLA, so their intermediates are not
stored):

  residual           2 * T * D * c: the block input and the stream between the mixer and the MLP.
  norms              2 * T * D * 4: the float32 sums that enter the two RMSNorms (they run in float32).
  mixer              attention: 4 * T * a * c, q, k, v (after RoPE) and the attention context before
                     o_proj. MLP-T: T * D * c (the transposed input) + 3 * D * I_T * c (gate, up and
                     their product of the token SwiGLU).
  attention_probs    h * T * T * 4: the float32 softmax output (the softmax gradient reads it). Its
                     compute-dtype copy that multiplies V is a convert XLA fuses into that matmul, so
                     it is not stored. Zero for MLP-T.
  mlp                3 * T * I * c: gate, up and silu(gate) * up of the channel SwiGLU.

Each of these is multiplied by B * blocks. With `model.remat` (tf.recompute_grad around each network
call of the with-gradient cycle) only the two inputs of each of the cycle's network calls are kept
(2 * T * D * c per call, counted in `residual`) and, while one call is being recomputed, the activations
of that ONE call (L_layers blocks); so the per-block terms are multiplied by B * L_layers instead.

  heads              B * (T * D * c + 3 * S * V * 4): the z_H that feeds lm_head, and the logits in the
                     compute dtype, in float32 and the loss's float32 probabilities.
  backward_transient the gradients of one block call's saved tensors, alive next to them while the
                     backward pass runs through that block: the per-block activations once more.
  workspace          XLA's scratch buffers, fragmentation and the runtime's reservation: 0.5 GiB + 10%
                     of everything above.

The estimate is deliberately simple and slightly pessimistic (XLA may rematerialise or fuse more than
assumed); `runtime.memory_check=False` starts a config anyway.
"""

from __future__ import annotations

import dataclasses

GIB = 2**30
# Cloud TPU v4 slices (v4-N has N TensorCores = N / 2 chips; TF sees one device per chip) and the
# HBM of one v4 chip.
V4_SLICES = (8, 16, 32, 64, 128, 256)
V4_HBM_GIB = 32.0
WORKSPACE_FIXED = GIB // 2
WORKSPACE_FRACTION = 0.10
OPTIMIZER_SLOTS = {"adam_atan2": 2, "adamw": 2, "lion": 1}
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# Shapes of the datasets our builders produce (TFDS metadata: seq_len, vocab_size,
# num_puzzle_identifiers), for estimating a config whose dataset is not built (the CLI, the config
# docstrings). ARC: measured builds (876,405 and 1,191,723 augmented puzzles, + the blank id 0).
DATASET_SHAPES = {
    "sudoku_extreme": (81, 11, 1),  # every Sudoku config: 9x9 cells, one shared (blank) identifier
    "maze_hard": (900, 6, 1),  # 30x30 cells, one shared identifier
    "arc_agi/arc1_aug1000": (900, 12, 876_406),
    "arc_agi/arc2_aug1000": (900, 12, 1_191_724),
}
# Other ARC configs: at most 1 + tasks * (1 + augmentations) identifiers (an upper bound: tasks with
# few colours yield fewer distinct augmentations).
ARC_TASKS = {"arc1": 960, "arc2": 1280}


class MemoryBudgetError(ValueError):
    """The per-chip estimate of a config exceeds the chip's HBM; the message is one line with fixes."""


def dataset_shapes(dataset: str) -> tuple[int, int, int]:
    """(seq_len, vocab_size, num_puzzle_identifiers) of "name/config" without reading the dataset.

    Raises:
      KeyError: a dataset this module has no figures for (build it and use its metadata instead).
    """
    name, _, cfg = dataset.partition("/")
    if dataset in DATASET_SHAPES:
        return DATASET_SHAPES[dataset]
    if name in DATASET_SHAPES:
        return DATASET_SHAPES[name]
    if name == "arc_agi" and "_aug" in cfg:
        version, _, aug = cfg.partition("_aug")
        if version in ARC_TASKS and aug.isdigit():
            return 900, 12, 1 + ARC_TASKS[version] * (1 + int(aug))
    raise KeyError(f"no shapes known for dataset {dataset!r}")


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything the estimate depends on, read once from the config and the dataset shapes."""

    arch: str
    hidden_size: int
    num_heads: int
    expansion: float
    L_layers: int
    H_layers: int
    L_cycles: int
    mlp_t: bool
    pos_encodings: str
    puzzle_emb_ndim: int
    puzzle_emb_len: int
    forward_dtype: str
    remat: bool
    optimizer: str
    ema: bool
    seq_len: int
    vocab_size: int
    num_puzzle_identifiers: int

    @classmethod
    def from_config(
        cls, config, seq_len: int, num_puzzle_identifiers: int, vocab_size: int | None
    ) -> Inputs:
        m, o = config.model, config.optim
        arch = m.arch
        hidden = int(m.hidden_size)
        ndim = int(m.puzzle_emb_ndim)
        if vocab_size is None:
            try:
                vocab_size = dataset_shapes(f"{config.data.name}/{config.data.config}")[1]
            except KeyError:
                vocab_size = 12  # the largest vocabulary of our datasets (ARC); it barely matters
        emb_len = int(m.puzzle_emb_len)
        if emb_len == 0:  # the models' rule: ceil(ndim / D) prefix positions
            emb_len = -(ndim // -hidden)
        return cls(
            arch=arch,
            hidden_size=hidden,
            num_heads=int(m.num_heads),
            expansion=float(m.expansion),
            L_layers=int(m.L_layers),
            H_layers=int(m.H_layers) if arch == "hrm" else 0,  # HRM's second network only
            L_cycles=int(m.L_cycles),
            mlp_t="mlp_t" in m and bool(m.mlp_t),  # an arch without the key (HRM) attends
            pos_encodings=str(m.pos_encodings),
            puzzle_emb_ndim=int(m.puzzle_emb_ndim),
            puzzle_emb_len=emb_len,
            forward_dtype=str(m.forward_dtype),
            remat=bool(m.remat),
            optimizer=str(o.name),
            ema=bool(o.ema),
            seq_len=int(seq_len),
            vocab_size=int(vocab_size),
            num_puzzle_identifiers=int(num_puzzle_identifiers),
        )


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per chip of one training step, by term (see the module docstring for each formula).

    `total` is the sum of every term; `activations` the sum of the `act_*` terms. `inputs` and
    `per_chip_batch` are kept so that `check_fits` can re-estimate variants (remat on, other slices).
    """

    inputs: Inputs
    per_chip_batch: int
    params: int  # trainable parameters P
    blocks_with_grad: int  # block calls of the with-gradient cycle
    blocks_kept: int  # block calls whose activations are alive at once (= L_layers under remat)
    weights: int
    gradients: int
    optimizer_slots: int
    ema: int
    puzzle_table: int
    carry: int
    act_residual: int
    act_norms: int
    act_mixer: int
    act_attention_probs: int
    act_mlp: int
    act_heads: int
    backward_transient: int
    workspace: int

    TERMS = (
        "weights",
        "gradients",
        "optimizer_slots",
        "ema",
        "puzzle_table",
        "carry",
        "act_residual",
        "act_norms",
        "act_mixer",
        "act_attention_probs",
        "act_mlp",
        "act_heads",
        "backward_transient",
        "workspace",
    )
    # Names used in messages and tables.
    LABELS = {
        "weights": "weights",
        "gradients": "gradients",
        "optimizer_slots": "optimizer slots",
        "ema": "EMA",
        "puzzle_table": "puzzle table",
        "carry": "carry",
        "act_residual": "residual stream",
        "act_norms": "norms",
        "act_mixer": "token mixer",
        "act_attention_probs": "attention probs",
        "act_mlp": "MLP",
        "act_heads": "heads",
        "backward_transient": "backward transient",
        "workspace": "XLA workspace",
    }

    @property
    def activations(self) -> int:
        return (
            self.act_residual
            + self.act_norms
            + self.act_mixer
            + self.act_attention_probs
            + self.act_mlp
            + self.act_heads
        )

    @property
    def total(self) -> int:
        return sum(getattr(self, k) for k in self.TERMS)

    def breakdown(self) -> dict[str, int]:
        """{term: bytes} in the order of `TERMS`."""
        return {k: getattr(self, k) for k in self.TERMS}

    def largest_term(self) -> str:
        return max(self.TERMS, key=lambda k: getattr(self, k))


def _network_calls(i: Inputs) -> list[int]:
    """Blocks of each network call of the with-gradient cycle, in order (the model's `_recursion_grad`)."""
    if i.arch == "transformer":
        return [i.L_layers]  # one pass of all blocks, no recursion
    if i.arch == "hrm":
        return [i.L_layers, i.H_layers]  # the last z_L update, then the last z_H update
    return [i.L_layers] * (i.L_cycles + 1)  # trm and its variants: n z_L updates, one z_H update


def count_params(i: Inputs) -> int:
    """Trainable parameters, from the layer shapes (equals the built model's `num_params()`)."""
    from trm_tf.models.layers import swiglu_intermediate_size  # noqa: PLC0415 (imports TF)

    d, t = i.hidden_size, i.seq_len + i.puzzle_emb_len
    inner = i.num_heads * (d // i.num_heads)
    ch = swiglu_intermediate_size(d, i.expansion)
    mlp = 3 * d * ch  # gate_up [D, 2I] + down [I, D]
    if i.mlp_t:
        tok = swiglu_intermediate_size(t, i.expansion)
        block = 3 * t * tok + mlp
    else:
        block = 3 * d * inner + inner * d + mlp  # qkv [D, 3a] + o [a, D]
    blocks = i.L_layers + (i.H_layers if i.arch == "hrm" else 0)
    embed = 2 * i.vocab_size * d + (2 * d + 2)  # embed_tokens, lm_head, q_head (+ bias)
    if i.pos_encodings == "learned":
        embed += t * d
    return blocks * block + embed


def _estimate(i: Inputs, per_chip_batch: int) -> MemoryEstimate:
    """The formulas of the module docstring, term by term."""
    from trm_tf.models.layers import swiglu_intermediate_size  # noqa: PLC0415 (imports TF)

    b, s, d, v = per_chip_batch, i.seq_len, i.hidden_size, i.vocab_size
    t = s + i.puzzle_emb_len
    h = i.num_heads
    inner = h * (d // h)
    ch = swiglu_intermediate_size(d, i.expansion)
    c = _DTYPE_BYTES[i.forward_dtype]
    f32 = 4

    p = count_params(i)
    init_vectors = (2 + (6 if i.arch == "trm_hier6" else 0)) * d * f32
    weights = p * f32 + (p * c if c != f32 else 0) + init_vectors
    gradients = p * f32
    slots = p * f32 * OPTIMIZER_SLOTS.get(i.optimizer, 2)
    ema = p * f32 if i.ema else 0
    table = i.num_puzzle_identifiers * i.puzzle_emb_ndim * f32 if i.puzzle_emb_ndim > 0 else 0
    z_l_width = 6 * d if i.arch == "trm_hier6" else d
    carry = b * t * (d + z_l_width) * c * 2 + b * s * f32 * 2 * 2

    # Per example and per block call.
    residual = 2 * t * d * c
    norms = 2 * t * d * f32
    mlp = 3 * t * ch * c
    if i.mlp_t:
        tok = swiglu_intermediate_size(t, i.expansion)
        mixer = t * d * c + 3 * d * tok * c
        probs = 0
    else:
        mixer = 4 * t * inner * c
        probs = h * t * t * f32

    calls = _network_calls(i)
    blocks_with_grad = sum(calls)
    blocks_kept = max(calls) if i.remat else blocks_with_grad
    # Under remat the inputs of every network call of the cycle (h and the injection) stay alive.
    call_inputs = len(calls) * 2 * t * d * c if i.remat else 0
    # The input embedding x is used by every call with gradient (the injection).
    embedding = t * d * c

    act_residual = b * (blocks_kept * residual + call_inputs + embedding)
    act_norms = b * blocks_kept * norms
    act_mixer = b * blocks_kept * mixer
    act_probs = b * blocks_kept * probs
    act_mlp = b * blocks_kept * mlp
    act_heads = b * (t * d * c + 3 * s * v * f32)
    transient = b * (residual + norms + mixer + probs + mlp)

    subtotal = (
        weights
        + gradients
        + slots
        + ema
        + table
        + carry
        + act_residual
        + act_norms
        + act_mixer
        + act_probs
        + act_mlp
        + act_heads
        + transient
    )
    workspace = WORKSPACE_FIXED + int(WORKSPACE_FRACTION * subtotal)
    return MemoryEstimate(
        inputs=i,
        per_chip_batch=b,
        params=p,
        blocks_with_grad=blocks_with_grad,
        blocks_kept=blocks_kept,
        weights=weights,
        gradients=gradients,
        optimizer_slots=slots,
        ema=ema,
        puzzle_table=table,
        carry=carry,
        act_residual=act_residual,
        act_norms=act_norms,
        act_mixer=act_mixer,
        act_attention_probs=act_probs,
        act_mlp=act_mlp,
        act_heads=act_heads,
        backward_transient=transient,
        workspace=workspace,
    )


def estimate(
    config,
    seq_len: int,
    num_puzzle_identifiers: int,
    per_chip_batch: int,
    vocab_size: int | None = None,
) -> MemoryEstimate:
    """Per-chip bytes of one training step of `config` (see the module docstring for every term).

    Args:
      config: an experiment config (configs/base.py fields; `model`, `optim`, and `data` for the
        vocabulary when `vocab_size` is not given).
      seq_len: tokens per example without the puzzle prefix (the dataset's `seq_len`).
      num_puzzle_identifiers: rows of the puzzle-embedding table (the dataset's metadata).
      per_chip_batch: examples per chip (= per replica): global batch / number of chips.
      vocab_size: the dataset's vocabulary; None = the known value of `config.data` (or 12).

    Returns:
      A MemoryEstimate; `.total` is the figure to compare with the chip's HBM.
    """
    if per_chip_batch < 1:
        raise ValueError(f"per_chip_batch must be >= 1, got {per_chip_batch}")
    return _estimate(
        Inputs.from_config(config, seq_len, num_puzzle_identifiers, vocab_size), per_chip_batch
    )


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _slice_name(chips: int) -> str:
    return f"v4-{2 * chips}" if 2 * chips in V4_SLICES else f"{chips} chips"


def max_fitting_batch(est: MemoryEstimate, hbm_bytes: float) -> int:
    """The largest per-chip batch whose estimate fits in `hbm_bytes` (0 if not even one example)."""
    lo, hi = 0, 1
    while _estimate(est.inputs, hi).total <= hbm_bytes:
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            return lo
    while hi - lo > 1:  # lo fits (or is 0), hi does not
        mid = (lo + hi) // 2
        if _estimate(est.inputs, mid).total <= hbm_bytes:
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
        with_remat = _estimate(remat_inputs, per_chip_batch).total
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
                if (total := _estimate(inputs, pcb).total) <= hbm_bytes
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
        plain = _estimate(i, pcb).total
        remat = _estimate(dataclasses.replace(i, remat=True), pcb).total
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
    """(seq_len, vocab, ids) from the built dataset's metadata if present, else `DATASET_SHAPES`."""
    import tensorflow as tf  # noqa: PLC0415

    from trm_tf.data.datasets import expand_dir, load_spec  # noqa: PLC0415

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
    seq, vocab, ids = _shapes_for(config)
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
