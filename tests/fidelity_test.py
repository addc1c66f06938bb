"""Fidelity to the reference where a float32 parity test cannot see the difference.

* Halting of the two baselines: HRM halts when q_halt > q_continue and learns q_continue from a
  bootstrapped target; the transformer baseline halts on the same comparison but never gives
  q_continue a target; TRM halts when q_halt > 0.
* bfloat16 numerics: the attention scores are formed and normalised in float32 from bfloat16 Q and K
  (a fused attention kernel never rounds them), and the embedding scale constants multiply in float32
  with one rounding (torch's bf16 tensor x Python float). Both are checked against float64 NumPy with
  a tolerance derived from bfloat16's epsilon, or bit for bit against an emulation of the rounding
  points.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import args, presets
from configs.validation import validate
from tests.testing.precision import BF16_EPS
from trm_tf import act
from trm_tf.models import layers as L
from trm_tf.models.backbone import ReasoningBackbone
from trm_tf.models.primitives import RotaryEmbedding, rope_cos_sin


def _bf16(a) -> np.ndarray:
    """float32 -> bfloat16 (round to nearest even) -> float32, as a NumPy array."""
    return tf.cast(tf.cast(np.asarray(a, np.float32), tf.bfloat16), tf.float32).numpy()


# ----------------------------------------------------------------------------------------------------
# Halting rules


def _config(preset):
    c = args.build(None)
    if preset is not None:
        preset(c)
    return validate(c)


@pytest.mark.parametrize(
    "preset,rule,target",
    [
        (None, "q_halt", False),
        (presets.hrm, "q_halt_vs_continue", True),
        (presets.transformer, "q_halt_vs_continue", False),
    ],
    ids=["trm", "hrm", "transformer"],
)
def test_presets_set_the_reference_halting_rule(preset, rule, target):
    c = _config(preset)
    assert c.act.halt_rule == rule
    assert c.act.q_continue_target is target


def test_validate_rejects_unknown_rule_and_a_target_without_the_comparison():
    c = _config(None)
    c.act.halt_rule = "q_continue"
    with pytest.raises(ValueError, match="act.halt_rule"):
        validate(c)
    c = _config(presets.hrm)
    c.act.halt_rule = "q_halt"
    with pytest.raises(ValueError, match="q_halt_vs_continue"):
        validate(c)


@pytest.mark.parametrize("rule,want", [("q_halt", True), ("q_halt_vs_continue", False)])
def test_halting_rule_at_q_halt_half_q_continue_one(rule, want):
    """q_halt = 0.5 > 0 but < q_continue = 1: TRM's slot halts, the transformer's (and HRM's) not."""
    got = act.halting(
        tf.constant([1]),
        tf.constant([0.5]),
        tf.constant([0]),
        halt_max_steps=16,
        training=True,
        q_continue=tf.constant([1.0]),
        halt_rule=rule,
    )
    assert bool(got.numpy()[0]) is want
    with pytest.raises(ValueError, match="halt_rule"):
        act.halting(tf.constant([1]), tf.constant([0.5]), tf.constant([0]), halt_max_steps=2,
                    training=True, halt_rule="q_halt_vs_continue")  # fmt: skip


def _tiny(arch):
    kw = dict(
        vocab_size=5,
        seq_len=4,
        num_puzzle_identifiers=2,
        hidden_size=16,
        num_heads=2,
        expansion=2.0,
        L_layers=1,
        H_cycles=1,
        L_cycles=1,
        puzzle_emb_ndim=0,
        puzzle_emb_len=0,
        pos_encodings="rope",
    )
    if arch == "hrm":
        kw["H_layers"] = 1
    else:
        kw["mlp_t"] = False
    m = ReasoningBackbone.create(arch, **kw)
    m.build_variables()
    # The Q head starts at weight 0, bias -5: then HRM's target sigmoid(max(q_halt', q_continue'))
    # equals sigmoid(q_continue) and its gradient vanishes. A random head makes the target informative.
    rng = np.random.default_rng(0)
    m.q_head.kernel.assign(rng.normal(size=m.q_head.kernel.shape).astype(np.float32))
    return m


def _train_step(model, preset):
    """One compiled-off ACT train step of `model` with the halting fields of `preset`'s config."""
    a = _config(preset).act
    core = act.make_train_core(
        model,
        global_batch_size=2,
        halt_max_steps=4,
        loss_type="softmax",
        jit_compile=False,
        q_continue_target=a.q_continue_target,
        halt_rule=a.halt_rule,
    )
    b, s = 2, model.seq_len
    carry = dict(model.initial_carry(b))
    carry.update(
        steps=tf.zeros([b], tf.int32),
        halted=tf.ones([b], tf.bool),
        inputs=tf.zeros([b, s], tf.int32),
        labels=tf.fill([b, s], -100),
        puzzle_identifiers=tf.zeros([b], tf.int32),
    )
    batch = dict(
        inputs=tf.constant([[1, 2, 3, 4], [4, 3, 2, 1]]),
        labels=tf.constant([[1, 2, 3, 4], [4, 3, 2, 1]]),
        puzzle_identifiers=tf.zeros([b], tf.int32),
    )
    return core(carry, batch, tf.zeros([b], tf.int32), tf.constant(1.0))


def _q_bias_grad(model, grads):
    """Gradient of the Q head's bias [q_halt, q_continue] among `grads`."""
    bias = model.q_head.bias
    (g,) = [g for v, g in zip(model.trainable_variables, grads) if v is bias]
    return None if g is None else tf.convert_to_tensor(g).numpy()


@pytest.mark.parametrize(
    "arch,preset,continue_learns",
    [("hrm", presets.hrm, True), ("transformer", presets.transformer, False)],
)
def test_q_continue_gets_a_gradient_only_with_hrms_target(arch, preset, continue_learns):
    model = _tiny(arch)
    _, grads, _, sums = _train_step(model, preset)
    g = _q_bias_grad(model, grads)
    assert g is not None and g[0] != 0  # q_halt always learns
    assert bool(g[1] != 0) is continue_learns, g
    assert ("q_continue_loss" in sums) is continue_learns


# ----------------------------------------------------------------------------------------------------
# bfloat16 numerics


def _attention_f64(qkv, w_o, h, hd, cos_sin=None):
    """Attention in float64 from the layer's own bf16 projection `qkv` [B, T, 3 H hd].

    With `cos_sin`, Q and K are rotated in float64 and rounded to bfloat16, where the reference
    rounds its rotated Q and K.
    """
    b, t, _ = qkv.shape
    q, k, v = (a.reshape(b, t, h, hd) for a in np.split(qkv.astype(np.float64), 3, axis=-1))
    if cos_sin is not None:
        cos, sin = (a[:t, None].astype(np.float64) for a in cos_sin)
        half = lambda a: np.concatenate([-a[..., hd // 2 :], a[..., : hd // 2]], -1)  # noqa: E731
        q, k = (_bf16(a * cos + half(a) * sin).astype(np.float64) for a in (q, k))
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bhqk,bkhd->bqhd", p, v).reshape(b, t, h * hd)
    return o @ w_o.astype(np.float64), s


@pytest.mark.parametrize("rope", [False, True], ids=["plain", "rope"])
def test_bf16_attention_scores_are_not_rounded_before_the_softmax(rope):
    """bf16 attention against float64 from the same bf16 Q, K, V, with scores of a trained model's size.

    Error budget of the bf16 layer after Q K V: the probabilities rounded to bf16 (each <= EPS/2
    relative), the P V product rounded (EPS/2) and the o_proj output rounded (EPS/2): at most about
    1.5 EPS of the output's scale, tolerance 2 EPS on the maximum and 1 EPS on the RMS (three
    independent roundings of RMS EPS/(2 sqrt 3) each give about 0.5 EPS). Rounding the scores to bf16
    (the defect) moves a score s by up to |s| EPS/2, i.e. by up to 0.06 at |s| ~ 30, which changes
    a probability by up to 6%: several EPS of the output.
    """
    rng = np.random.default_rng(11)
    d, h, t, b = 64, 4, 24, 2
    hd = d // h
    attn = L.Attention(d, h, seed=1, dtype=keras.DTypePolicy("mixed_bfloat16"))
    attn.build(None)
    # bf16-exact weights; Q/K columns scaled up so the scores have a std of ~16 (sharp attention).
    w_qkv = rng.normal(size=(d, 3 * d)) / math.sqrt(d)
    w_qkv[:, : 2 * d] *= 4.0
    attn.qkv_proj.kernel.assign(_bf16(w_qkv))
    attn.o_proj.kernel.assign(_bf16(rng.normal(size=(d, d)) / math.sqrt(d)))
    x = tf.cast(_bf16(rng.normal(size=(b, t, d))), tf.bfloat16)
    rotary = RotaryEmbedding(hd, t) if rope else None
    got = tf.cast(attn(x, rotary=rotary), tf.float32).numpy()
    qkv = tf.cast(attn.qkv_proj(x), tf.float32).numpy()  # the reference rounds Q, K, V to bf16 too
    want, scores = _attention_f64(
        qkv, _bf16(attn.o_proj.kernel.numpy()), h, hd, rope_cos_sin(hd, t) if rope else None
    )
    assert np.std(scores) > 10  # the regime where the rounding of the scores shows
    err = np.abs(got - want).max() / np.abs(want).max()
    rms = np.sqrt(np.mean((got - want) ** 2) / np.mean(want**2))
    assert err < 2 * BF16_EPS, err / BF16_EPS  # about 0.7 EPS here; 3 to 5 EPS with rounded scores
    assert rms < BF16_EPS, rms / BF16_EPS  # about 0.6 EPS here; 1.6 to 2.6 EPS with rounded scores


def _emulate_embeddings(m, inputs, ids):
    """The reference's bf16 input embedding, rounding point by rounding point, in NumPy.

    Weights are cast to bf16 at lookup; the prefix and tokens are concatenated; with learned
    positions, (x + pos) is a bf16 sum and 0.707106781 * it a float32 product rounded once; then
    sqrt(D) * x likewise. A float32 product of a bf16 value and a float32 constant, rounded to bf16
    (round to nearest even), is what torch computes for a bf16 tensor times a Python float.
    """
    d = m.hidden_size
    x = _bf16(m.embed_tokens.embeddings.numpy())[inputs]
    rows = _bf16(m.puzzle_emb.numpy())[ids]
    rows = np.pad(rows, [(0, 0), (0, m.puzzle_emb_len * d - rows.shape[-1])])
    x = np.concatenate([rows.reshape(-1, m.puzzle_emb_len, d), x], axis=1)
    pos = _bf16(m.embed_pos.embeddings.numpy())
    x = _bf16(x + pos[None])
    x = _bf16(x.astype(np.float32) * np.float32(0.707106781))
    return _bf16(x.astype(np.float32) * np.float32(math.sqrt(d)))


@pytest.mark.parametrize("d", [48, 512])
def test_bf16_embedding_scales_multiply_in_float32(d):
    """Bit-exact against the emulated rounding points; sqrt(48) = 6.928 is 6.9375 in bf16 and
    sqrt(512) = 22.627 is 22.625, so bf16 constants put many elements one bf16 step off."""
    m = ReasoningBackbone.create(
        "trm",
        vocab_size=11,
        seq_len=16,
        num_puzzle_identifiers=3,
        hidden_size=d,
        num_heads=1,
        expansion=1.0,
        L_layers=1,
        H_cycles=1,
        L_cycles=1,
        puzzle_emb_ndim=d,
        puzzle_emb_len=2,
        pos_encodings="learned",
        mlp_t=False,
        forward_dtype="bfloat16",
    )
    m.build_variables()
    rng = np.random.default_rng(0)
    # Random (not initial) embedding values, so the bf16 mantissas cover all their patterns.
    m.embed_tokens.embeddings.assign(rng.normal(size=(11, d)).astype(np.float32) / math.sqrt(d))
    m.embed_pos.embeddings.assign(rng.normal(size=(m.total_len, d)).astype(np.float32) * 0.02)
    m.puzzle_emb.assign(rng.normal(size=(3, d)).astype(np.float32))
    inputs = rng.integers(0, 11, size=(4, 16)).astype(np.int32)
    ids = np.array([0, 1, 2, 1], np.int32)
    got = m.input_embeddings(inputs, m.gather_puzzle_rows(ids))
    assert got.dtype == tf.bfloat16
    np.testing.assert_array_equal(
        tf.cast(got, tf.float32).numpy(), _emulate_embeddings(m, inputs, ids)
    )
