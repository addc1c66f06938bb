"""Shared deltas of the experiment files: per-arch model keywords, task presets, batch/LR rules.

Each function changes a config in place (and returns it) and is called from an experiment file's deltas
(`configs.args.build`), before `runlocal` and `validate`. The catalogue of runs is configs/catalogue.py.
"""

from __future__ import annotations

import math

import ml_collections

# The paper's Sudoku recipe, against which the batch-scaling rules are anchored
# (docs/model.md#training-loop).
PAPER_BATCH = 768
PAPER_LR = 1e-4
PAPER_WARMUP = 2000


# ----------------------------------------------------------------------------------------------------
# Per-arch model keywords (docs/model.md#variants). `model` holds only keywords of its arch, so a preset
# deletes the TRM switches the arch does not have and adds the ones it has.


def hrm(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """HRM: two attention networks of 4 blocks (H_level, L_level), H_cycles=L_cycles=2, a one-position
    puzzle prefix, and HRM's halting: q_halt > q_continue with q_continue's bootstrapped target."""
    m = _reference_baseline(c, "hrm", q_continue_target=True)
    del m.mlp_t, m.attention_window  # HRM's blocks are attention only, without windows
    m.H_layers = 4
    m.L_layers = 4
    m.H_cycles = m.L_cycles = 2
    return c


def transformer(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The reference's `transformers_baseline`: 8 post-norm attention blocks of 12 heads, one pass per
    supervision step. It halts as the reference baseline does, when q_halt > q_continue, but unlike HRM
    it computes no target for q_continue: q_continue gets no loss, and its bias (initialised to -5)
    only decays under weight decay, so in practice it halts once q_halt exceeds about -5."""
    m = _reference_baseline(c, "transformer", q_continue_target=False)
    del m.attention_window
    m.L_layers = 8  # the reference calls them H_layers
    m.num_heads = 12
    m.H_cycles = m.L_cycles = 1
    return c


def _reference_baseline(c, arch: str, q_continue_target: bool) -> ml_collections.ConfigDict:
    """What HRM and the transformer baseline share: attention + RoPE, a one-position puzzle prefix and
    halting when q_halt > q_continue. Returns the model section for the arch's own keywords."""
    sudoku_attention(c)
    m = c.model
    m.arch = arch
    m.puzzle_emb_len = 0  # 0 = ceil(puzzle_emb_ndim / hidden_size) = 1, the reference's rule
    c.act.halt_rule = "q_halt_vs_continue"
    c.act.q_continue_target = q_continue_target
    return m


# ----------------------------------------------------------------------------------------------------
# Task presets (docs/model.md#training-loop). Sudoku MLP-T is base itself.


def sudoku_attention(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """TRM-Att on Sudoku: self-attention with RoPE instead of the MLP over the sequence."""
    c.model.mlp_t = False
    c.model.pos_encodings = "rope"
    return c


def maze_hard(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`pretrain_att_maze30x30`: attention + RoPE, T=3, n=4, lr 1e-4 (both), wd 1.0, 50k epochs."""
    sudoku_attention(c)
    c.data.name, c.data.config = "maze_hard", "hard"
    c.model.H_cycles, c.model.L_cycles = 3, 4
    c.optim.lr = c.optim.puzzle_emb_lr = 1e-4
    c.optim.weight_decay = c.optim.puzzle_emb_weight_decay = 1.0
    c.train.epochs, c.train.eval_interval_epochs = 50000, 5000
    return c


def arc_agi(c: ml_collections.ConfigDict, version: int) -> ml_collections.ConfigDict:
    """`pretrain_att_arc{1,2}concept_4`: attention + RoPE, T=3, n=4, the cfg_pretrain.yaml optimiser
    (puzzle-emb lr 1e-2, wd 0.1 both), 100k epochs, eval every 10k with the ARC pass@K evaluator.

    Every evaluation covers every task (`eval.arc_subset_tasks = -1`), as the reference's do, so the
    run's `ARC/pooled/pass@2` is the reference's logged `ARC/pass@2` (the paper's figure): the votes of
    every evaluation of every task (`trm_tf.evaluators.arc`)."""
    sudoku_attention(c)
    c.data.name, c.data.config = "arc_agi", f"arc{version}_aug1000"
    c.model.H_cycles, c.model.L_cycles = 3, 4
    c.optim.lr, c.optim.puzzle_emb_lr = 1e-4, 1e-2
    c.optim.weight_decay = c.optim.puzzle_emb_weight_decay = 0.1
    c.train.epochs, c.train.eval_interval_epochs = 100000, 10000
    c.eval.evaluators = ("accuracy", "arc")
    c.eval.arc_subset_tasks = -1
    return c


# ----------------------------------------------------------------------------------------------------
# Batch-size rules. The study anchored its rules on its own 6144 "baseline" (not the paper recipe) and
# kept the warm-up at 2000 steps even where a run has fewer steps than that
# (docs/experiments.md#study-defects, 9 and 12). Here both rules are anchored on the paper (768,
# 1e-4) and the warm-up keeps the paper's number of warm-up EXAMPLES (2000 x 768), i.e. the same
# fraction of training at every batch size.


def warmup_for_batch(batch: int) -> int:
    """Warm-up steps covering the paper's 2000 x 768 examples, rounded up."""
    return -(-PAPER_WARMUP * PAPER_BATCH // batch)


def _train_batch(c: ml_collections.ConfigDict, batch: int) -> None:
    """Sets the train batch and keeps evaluation at the paper's batch (what these runs always used;
    the eval batch changes no metric, only eval memory and speed)."""
    c.eval.global_batch_size = PAPER_BATCH  # breaks the eval <- train batch tie of base.py
    c.train.global_batch_size = batch


def linear_lr_batch(c: ml_collections.ConfigDict, batch: int) -> ml_collections.ConfigDict:
    """E1.3: batch B with lr = 1e-4 * B / 768 (puzzle-embedding lr unchanged, as the E-scheme did)."""
    _train_batch(c, batch)
    c.optim.lr = PAPER_LR * batch / PAPER_BATCH
    c.optim.lr_warmup_steps = warmup_for_batch(batch)
    return c


def sqrt_lr_batch(c: ml_collections.ConfigDict, batch: int) -> ml_collections.ConfigDict:
    """exp06: batch B with lr = puzzle_emb_lr = 1e-4 * sqrt(B / 768) (the study's sqrt rule)."""
    _train_batch(c, batch)
    c.optim.lr = c.optim.puzzle_emb_lr = PAPER_LR * math.sqrt(batch / PAPER_BATCH)
    c.optim.lr_warmup_steps = warmup_for_batch(batch)
    return c
