r"""Per-chip HBM estimate of one training step of a config: the formulas, term by term.

`trm_tf.memory` turns it into the start-up refusal of configs that cannot fit and the table of Cloud
TPU v4 slices. Why: full attention at 916 positions (900 grid cells + 16 puzzle-prefix slots) keeps about 27 MB of
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
  optimizer_slots    P * 4 * slots: the optimizer's float32 slots per weight, from the registry
                     `trm_tf.optim.OPTIMIZERS` (e.g. 2 for AdamATan2, first and second moment).
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
WORKSPACE_FIXED = GIB // 2
WORKSPACE_FRACTION = 0.10
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


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
            from trm_tf.data.datasets import dataset_shapes  # noqa: PLC0415 (imports TF and TFDS)

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

    # Every term in breakdown order, with the name used in messages and tables.
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
    TERMS = tuple(LABELS)

    @property
    def activations(self) -> int:
        return sum(getattr(self, k) for k in self.TERMS if k.startswith("act_"))

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
    from trm_tf.models.primitives import swiglu_intermediate_size  # noqa: PLC0415 (imports TF)

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


def estimate_inputs(i: Inputs, per_chip_batch: int) -> MemoryEstimate:
    """The formulas of the module docstring, term by term (`estimate` without reading a config)."""
    p = count_params(i)
    state = _state_terms(i, per_chip_batch, p)
    acts, blocks_with_grad, blocks_kept = _activation_terms(i, per_chip_batch)
    subtotal = sum(state.values()) + sum(acts.values())
    return MemoryEstimate(
        inputs=i,
        per_chip_batch=per_chip_batch,
        params=p,
        blocks_with_grad=blocks_with_grad,
        blocks_kept=blocks_kept,
        **state,
        **acts,
        workspace=WORKSPACE_FIXED + int(WORKSPACE_FRACTION * subtotal),
    )


def _state_terms(i: Inputs, b: int, p: int) -> dict[str, int]:
    """Weights, gradients, optimizer slots, EMA, puzzle table and carry: alive for the whole step."""
    from trm_tf.optim import dense_optimizer  # noqa: PLC0415 (imports TF)

    d, t, c, f32 = i.hidden_size, i.seq_len + i.puzzle_emb_len, _DTYPE_BYTES[i.forward_dtype], 4
    init_vectors = (2 + (6 if i.arch == "trm_hier6" else 0)) * d * f32
    z_l_width = 6 * d if i.arch == "trm_hier6" else d
    return {
        "weights": p * f32 + (p * c if c != f32 else 0) + init_vectors,
        "gradients": p * f32,
        "optimizer_slots": p * f32 * dense_optimizer(i.optimizer).slots,
        "ema": p * f32 if i.ema else 0,
        "puzzle_table": (
            i.num_puzzle_identifiers * i.puzzle_emb_ndim * f32 if i.puzzle_emb_ndim > 0 else 0
        ),
        "carry": b * t * (d + z_l_width) * c * 2 + b * i.seq_len * f32 * 2 * 2,
    }


def _activation_terms(i: Inputs, b: int) -> tuple[dict[str, int], int, int]:
    """The activation terms and the backward transient, with the block calls with gradient and the
    block calls whose activations are alive at once."""
    from trm_tf.models.primitives import swiglu_intermediate_size  # noqa: PLC0415 (imports TF)

    s, d, v, h = i.seq_len, i.hidden_size, i.vocab_size, i.num_heads
    t, c, f32 = s + i.puzzle_emb_len, _DTYPE_BYTES[i.forward_dtype], 4
    # Per example and per block call.
    residual = 2 * t * d * c
    norms = 2 * t * d * f32
    mlp = 3 * t * swiglu_intermediate_size(d, i.expansion) * c
    if i.mlp_t:
        mixer = t * d * c + 3 * d * swiglu_intermediate_size(t, i.expansion) * c
        probs = 0
    else:
        mixer = 4 * t * (h * (d // h)) * c
        probs = h * t * t * f32

    calls = _network_calls(i)
    blocks_with_grad = sum(calls)
    blocks_kept = max(calls) if i.remat else blocks_with_grad
    # Under remat the inputs of every network call of the cycle (h and the injection) stay alive.
    call_inputs = len(calls) * 2 * t * d * c if i.remat else 0
    # The input embedding x is used by every call with gradient (the injection).
    embedding = t * d * c
    terms = {
        "act_residual": b * (blocks_kept * residual + call_inputs + embedding),
        "act_norms": b * blocks_kept * norms,
        "act_mixer": b * blocks_kept * mixer,
        "act_attention_probs": b * blocks_kept * probs,
        "act_mlp": b * blocks_kept * mlp,
        "act_heads": b * (t * d * c + 3 * s * v * f32),
        "backward_transient": b * (residual + norms + mixer + probs + mlp),
    }
    return terms, blocks_with_grad, blocks_kept


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
    return estimate_inputs(
        Inputs.from_config(config, seq_len, num_puzzle_identifiers, vocab_size), per_chip_batch
    )
