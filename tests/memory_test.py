"""The per-chip HBM estimate: hand-counted terms, the refusal message, remat, and the slice every config's
docstring names.

Hand counts below are written out from the shapes (heads x positions^2 x 4 bytes x block calls x batch,
...) rather than by calling the module's helpers, so a wrong formula fails here.
"""

import inspect
import re

import ml_collections
import pytest

from configs import catalogue
from tests.testing.config_files import load, load_module
from trm_tf import memory
from trm_tf.models import build_model, model_keys
from trm_tf.tasks import arc, maze, sudoku

GIB = 2**30
HBM = 32 * GIB
V4_8_CHIPS = 4


def _shapes(config):
    return memory.dataset_shapes(f"{config.data.name}/{config.data.config}")


def _estimate(config, per_chip_batch):
    seq, vocab, ids = _shapes(config)
    return memory.estimate(config, seq, ids, per_chip_batch, vocab_size=vocab)


def test_dataset_shapes_are_the_builders():
    assert memory.dataset_shapes("sudoku_extreme/sub1000_aug1000")[:2] == (
        sudoku.SEQ_LEN,
        sudoku.VOCAB_SIZE,
    )
    assert memory.dataset_shapes("maze_hard/hard")[:2] == (maze.SEQ_LEN, maze.VOCAB_SIZE)
    for cfg in ("arc1_aug1000", "arc2_aug1000", "arc1_aug100"):
        assert memory.dataset_shapes(f"arc_agi/{cfg}")[:2] == (arc.SEQ_LEN, arc.VOCAB_SIZE)
    # Unmeasured ARC configs: the upper bound 1 + tasks * (1 + augmentations).
    assert memory.dataset_shapes("arc_agi/arc1_aug100")[2] == 1 + 960 * 101
    with pytest.raises(KeyError):
        memory.dataset_shapes("unknown/x")


@pytest.mark.parametrize(
    "arch,overrides",
    [
        ("trm", dict(mlp_t=False, pos_encodings="rope")),
        ("trm", dict(mlp_t=True, pos_encodings="none")),
        ("trm", dict(mlp_t=False, pos_encodings="learned", num_heads=3)),
        ("hrm", dict(mlp_t=False, pos_encodings="rope", H_layers=3, puzzle_emb_len=0)),
        ("transformer", dict(mlp_t=False, pos_encodings="rope", num_heads=7, puzzle_emb_len=0)),
    ],
)
def test_parameter_count_equals_the_built_model(arch, overrides):
    config = ml_collections.ConfigDict(load("configs/e1_1_baseline.py").to_dict())
    m = config.model
    m.update(dict(arch=arch, hidden_size=48, puzzle_emb_ndim=48, L_layers=2, **overrides))
    inputs = memory.Inputs.from_config(config, seq_len=25, num_puzzle_identifiers=3, vocab_size=7)
    kwargs = {k: v for k, v in m.items() if k in model_keys(arch)}  # HRM: no mlp_t switch
    model = build_model(kwargs, vocab_size=7, seq_len=25, num_puzzle_identifiers=3)
    assert memory.count_params(inputs) == model.num_params()


def test_attention_probs_term_is_the_hand_count():
    config = load("configs/paper_arc1.py")
    est = _estimate(config, 192)
    # 8 heads x 916 x 916 positions (900 cells + 16 prefix) x 4 bytes (float32 softmax) per example and
    # block call; the with-gradient cycle makes (L_cycles 4 + 1) network calls of 2 blocks = 10 calls.
    assert est.act_attention_probs == 8 * 916 * 916 * 4 * 10 * 192
    assert est.blocks_with_grad == est.blocks_kept == 10
    # The ARC-AGI-1 puzzle table (876,406 rows x 512 float32) is on every chip.
    assert est.puzzle_table == 876_406 * 512 * 4
    # Parameters: 2 blocks x (qkv 512x1536 + o 512x512 + SwiGLU 3 x 512 x 1536) + embeddings and heads.
    params = 2 * (512 * 1536 + 512 * 512 + 3 * 512 * 1536) + 2 * 12 * 512 + 2 * 512 + 2
    assert est.params == params
    # bfloat16 forward: float32 weights + their bf16 copies, float32 gradients, 2 AdamATan2 slots, EMA.
    assert est.weights == params * 6 + 2 * 512 * 4
    assert (est.gradients, est.optimizer_slots, est.ema) == (params * 4, params * 8, params * 4)
    # Carry: z_H, z_L [192, 916, 512] bf16, old and new; int32 inputs and labels [192, 900], twice.
    assert est.carry == 2 * 192 * 916 * 512 * 2 * 2 + 192 * 900 * 4 * 2 * 2
    assert est.total == sum(est.breakdown().values())


def test_remat_keeps_one_network_call_of_activations():
    config = load("configs/paper_maze_hard.py")
    plain = _estimate(config, 48)
    config.unlock()
    config.model.remat = True
    remat = _estimate(config, 48)
    n_calls = config.model.L_cycles + 1  # 5 network calls of L_layers = 2 blocks
    # Per-block terms: 10 block calls kept -> 2 (one network call being recomputed).
    for term in ("act_attention_probs", "act_mlp", "act_norms", "act_mixer"):
        assert getattr(remat, term) * n_calls == getattr(plain, term), term
    # Residual stream: 10 blocks x 2 tensors -> 2 blocks x 2 tensors + the 2 inputs of each of the
    # 5 calls; plus the input embedding in both. In units of T x D x bf16 x batch:
    unit = 916 * 512 * 2 * 48
    assert plain.act_residual == (10 * 2 + 1) * unit
    assert remat.act_residual == (2 * 2 + 5 * 2 + 1) * unit
    assert remat.total < plain.total
    # Weights, slots, carry do not change.
    assert (remat.weights, remat.optimizer_slots, remat.carry) == (
        plain.weights,
        plain.optimizer_slots,
        plain.carry,
    )


@pytest.mark.parametrize("path", ["configs/paper_arc1.py", "configs/paper_maze_hard.py"])
def test_paper_attention_configs_are_refused_on_a_v4_8(path):
    config = load(path)
    assert config.train.global_batch_size == 768
    est = _estimate(config, 768 // V4_8_CHIPS)
    with pytest.raises(memory.MemoryBudgetError) as info:
        memory.check_fits(est, HBM, 768 // V4_8_CHIPS, V4_8_CHIPS)
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    assert msg.startswith(
        f"est. {est.total / GIB:.1f} GiB per chip > 32.0 GiB HBM (attention probs"
    )
    assert "--config.model.remat=True" in msg
    # The suggested slice is the smallest one on which the config fits as it is, at global batch 768.
    rows = memory.slice_table(config, *_shapes(config)[::2], 768)
    best = memory.smallest_fitting_slice(rows)
    assert best.slice_name == "v4-32" and best.per_chip_batch == 48
    assert f"use a larger slice ({best.slice_name}: per-chip batch 48," in msg
    memory.check_fits(_estimate(config, 48), HBM, 48, 16)  # and there it passes
    # The largest per-chip batch said to fit does fit, and one more does not.
    limit = int(re.search(r"<= (\d+) fits", msg).group(1))
    assert _estimate(config, limit).total <= HBM < _estimate(config, limit + 1).total


def test_sudoku_mlp_t_baseline_fits_a_v4_8():
    config = load("configs/e1_1_baseline.py")
    est = _estimate(config, 192)
    memory.check_fits(est, HBM, 192, V4_8_CHIPS)
    assert est.act_attention_probs == 0 and est.puzzle_table == 1 * 512 * 4
    with pytest.raises(ValueError, match="per-chip batch 192, not 96"):
        memory.check_fits(est, HBM, 96, 8)


def test_float32_forward_has_no_weight_copies_and_wider_activations():
    config = load("configs/e2_3_attention.py")
    bf16 = _estimate(config, 16)
    config.unlock()
    config.model.forward_dtype = "float32"
    f32 = _estimate(config, 16)
    assert f32.weights == bf16.params * 4 + 2 * 512 * 4
    assert f32.act_mlp == 2 * bf16.act_mlp  # compute-dtype tensors double
    assert f32.act_norms == bf16.act_norms  # the norms run in float32 either way
    assert f32.act_attention_probs == bf16.act_attention_probs  # softmax in float32 either way


# A config docstring names, after each launch line, where the run fits:
#   python launch.py --config=ARG --workdir=... --tpu=local|$(scripts/tpu_address.sh ...) --config...
#   # Fits: v4-N (per-chip batch B, est. X GiB of 32 GiB HBM per chip)
FITS = re.compile(
    r"--tpu=(local|\$\(scripts/tpu_address\.sh --name=TPU_NAME --zone=ZONE\)) [^\n]*\n\s*# Fits: v4-(\d+) \(per-chip batch (\d+), est\. ([\d.]+) GiB of 32 GiB"
)


@pytest.mark.parametrize("run", catalogue.RUNS, ids=lambda r: r.run_id)
def test_config_docstring_names_a_slice_it_fits(run):
    config = load(run.config_arg)
    doc = inspect.getdoc(load_module(run.config))
    launch = f"python launch.py --config={run.config_arg} --workdir=gs://BUCKET/runs/{run.run_id} "
    start = doc.index(launch)
    match = FITS.search(doc, start)
    assert match and match.start() < doc.index("\n", start), (
        f"no '# Fits:' line right after the launch line of {run.config_arg}"
    )
    tpu, size, pcb, est_gib = (
        match.group(1),
        int(match.group(2)),
        int(match.group(3)),
        match.group(4),
    )
    chips = size // 2
    g = config.train.global_batch_size
    assert pcb * chips == g
    # `--tpu=local` drives only the single-host v4-8; larger slices are named from the client VM.
    assert (tpu == "local") == (size == 8)
    est = _estimate(config, pcb)
    memory.check_fits(est, HBM, pcb, chips)
    assert est_gib == f"{est.total / GIB:.1f}"
    # It is the smallest slice that fits (the docs must not send a run to a bigger pod than needed).
    best = memory.smallest_fitting_slice(memory.slice_table(config, *_shapes(config)[::2], g))
    assert best.slice_name == f"v4-{size}"
