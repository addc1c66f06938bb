"""Tests of the recursion schemes (trm_tf.models.recursion; TRM's gradient structure is
gradients_test.py). HRM, single-z TRM, hier6 TRM and the plain transformer: against float64 NumPy forwards (HRM's in
tests/testing/reference_numpy.py, the others written here from docs/model.md#variants), plus
parameter counts, gradient placement, the model factory, XLA tracing and one real trainer step each."""

import functools
import math

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import reference_numpy as rn
from tests.testing.launch import small_config
from tests.testing.model_inputs import random_batch, randomise_weights
from tests.testing.small_models import HRM, SMALL, np_cfg
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf.data import input_pipeline
from trm_tf.models import build_model, model_keys
from trm_tf.models.backbone import ReasoningBackbone
from trm_tf.models.recursion import RECURSIONS
from trm_tf.trainer import Trainer

# The transformer with a head count that does not divide D (like the reference's 12 heads at 512):
# head_dim 10, attention inner width 30.
SMALL_TF = dict(SMALL, num_heads=3, puzzle_emb_len=0)
CLASSES = {
    arch: functools.partial(ReasoningBackbone.create, arch)
    for arch in ("trm_singlez", "trm_hier6", "transformer")
}
TRMSingleZ, TRMHier6, TransformerBaseline = CLASSES.values()
LATENTS = {
    "trm_singlez": ["z"],
    "trm_hier6": ["z_H", "z_L1", "z_L2", "z_L3", "z_L4", "z_L5", "z_L6"],
    "transformer": ["z_H"],
}


def _pair(arch, carry):
    """(z_H, z_L) of the NumPy forwards: hier6's six latents side by side along the hidden axis;
    the single z of trm_singlez in the z_H place; None where the scheme carries no z_L."""
    if arch == "trm_singlez":
        return carry["z"], None
    if arch == "trm_hier6":
        return carry["z_H"], np.concatenate([np.asarray(carry[k]) for k in LATENTS[arch][1:]], -1)
    return carry["z_H"], None


def _unpair(arch, z_H, z_L):
    """The carry dict of `_pair`'s (z_H, z_L)."""
    if arch == "trm_singlez":
        return {"z": z_H}
    if arch == "trm_hier6":
        return {"z_H": z_H, **dict(zip(LATENTS[arch][1:], np.split(z_L, 6, axis=-1)))}
    return {"z_H": z_H}


def _make(arch, **over):
    cfg = dict(SMALL_TF if arch == "transformer" else SMALL)
    cfg.update(over)
    m = CLASSES[arch](**cfg)
    m.build_variables()
    return m


def _np_attention_any_heads(h, w_qkv, w_o, num_heads, cos, sin):
    """Reference `Attention` with head_dim = D // H (inner width H * head_dim may be < D)."""
    b, t, _ = h.shape
    hd = h.shape[-1] // num_heads
    qkv = rn._linear(h, w_qkv).reshape(b, t, 3 * num_heads, hd)
    q, k, v = np.split(qkv, 3, axis=2)
    c, s = cos[:t, None, :], sin[:t, None, :]
    q = q * c + rn._rotate_half(q) * s
    k = k * c + rn._rotate_half(k) * s
    sc = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return rn._linear(np.einsum("bhqk,bkhd->bqhd", p, v).reshape(b, t, num_heads * hd), w_o)


def np_forward(arch, sd, cfg, z_H, z_L, inputs, ids, H_cycles, L_cycles):
    """One supervision step of each variant, as docs/model.md#variants and the reference files describe it."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    x = rn.input_embeddings(sd, cfg, inputs, ids)
    t = x.shape[1]
    cos, sin = rn._rope_tables(cfg["hidden_size"] // cfg["num_heads"], t, cfg["rope_theta"])
    cos_sin = (cos, sin) if cfg["pos_encodings"] == "rope" else None
    z_H, z_L = np.asarray(z_H, np.float64), np.asarray(z_L, np.float64)

    def net(h, inj):
        return rn._net(h, inj, sd, cfg, cos_sin)

    if arch == "trm_singlez":
        z = z_H
        for _ in range(H_cycles):
            for _ in range(L_cycles):
                z = net(z, x)
            z = net(z, 0.0)  # no injection
        z_H = z
    elif arch == "trm_hier6":
        zs = np.split(z_L, 6, axis=-1)
        for _ in range(H_cycles):
            for k in range(L_cycles):
                zs[k] = net(sum(zs), z_H + x)
            z_H = net(z_H, sum(zs))
        z_L = np.concatenate(zs, axis=-1)
    else:  # transformer: z_H <- blocks(z_H + x), once
        h = z_H + x
        for i in range(cfg["L_layers"]):
            p = f"inner.L_level.layers.{i}."
            a = _np_attention_any_heads(
                h,
                sd[p + "self_attn.qkv_proj.weight"],
                sd[p + "self_attn.o_proj.weight"],
                cfg["num_heads"],
                cos,
                sin,
            )
            h = rn._rms(h + a)
            h = rn._rms(
                h + rn._swiglu(h, sd[p + "mlp.gate_up_proj.weight"], sd[p + "mlp.down_proj.weight"])
            )
        z_H = h
    logits = rn._linear(z_H, sd["inner.lm_head.weight"])[:, cfg["puzzle_emb_len"] :]
    q = rn._linear(z_H[:, 0], sd["inner.q_head.weight"]) + sd["inner.q_head.bias"]
    return dict(z_H=z_H, z_L=z_L, logits=logits, q_halt=q[:, 0], q_continue=q[:, 1])


def _small_hrm(**over):
    cfg = dict(SMALL, H_layers=2, L_layers=3, H_cycles=2, L_cycles=2, puzzle_emb_len=0)
    cfg.update(over)
    m = HRM(**cfg)
    m.build_variables()
    return m


def test_hrm_parity_counts_and_one_step_gradient():
    m = _small_hrm()
    assert m.puzzle_emb_len == 1 and len(m.H_level.blocks) == 2 and len(m.L_level.blocks) == 3
    sd = randomise_weights(m, seed=11)
    assert any(k.startswith("inner.H_level.layers.1.") for k in sd)
    inputs, ids = random_batch(m, b=2)
    rng = np.random.default_rng(12)
    shape = (2, m.total_len, m.hidden_size)
    z_H = rng.normal(size=shape).astype(np.float32)
    z_L = rng.normal(size=shape).astype(np.float32)
    out = m.inner({"z_H": z_H, "z_L": z_L}, inputs, m.gather_puzzle_rows(ids))
    out.update(out.pop("carry"))
    cfg = dict(np_cfg(m), arch="hrm", H_layers=m.H_layers)
    ref = rn.inner_forward(sd, cfg, z_H, z_L, inputs, ids)
    for k in ("logits", "q_halt", "q_continue", "z_H", "z_L"):
        np.testing.assert_allclose(out[k].numpy(), ref[k], atol=2e-5, rtol=1e-5, err_msg=k)
    # 1-step gradient: only the last z_L and z_H updates are recorded.
    calls = []
    orig_l, orig_h = m.net, m.h_net
    m.net = lambda h, i: calls.append(("L", orig_l(h, i))) or calls[-1][1]
    m.h_net = lambda h, i: calls.append(("H", orig_h(h, i))) or calls[-1][1]
    with tf.GradientTape(persistent=True) as tape:
        m.inner({"z_H": z_H, "z_L": z_L}, inputs, m.gather_puzzle_rows(ids))
    assert [c[0] for c in calls] == ["L", "L", "H", "L", "L", "H"]
    recorded = [
        any(g is not None for g in tape.gradient(y, m.trainable_variables)) for _, y in calls
    ]
    assert recorded == [False, False, False, False, True, True]
    # docs/model.md#parameter-counts: HRM on ARC (8 blocks, V=12) has 27,276,290 parameters.
    assert HRM(12, 900, 1).num_params() == 27_276_290


@pytest.mark.parametrize(
    "arch,over",
    [
        ("trm_singlez", dict(pos_encodings="rope")),
        ("trm_singlez", dict(mlp_t=True, pos_encodings="none")),
        ("trm_hier6", dict(pos_encodings="rope", L_cycles=2)),
        ("trm_hier6", dict(mlp_t=True, pos_encodings="none", L_cycles=6, H_cycles=1)),
        ("transformer", dict(pos_encodings="rope")),
    ],
    ids=["singlez_att", "singlez_mlpt", "hier6_att", "hier6_mlpt_n6", "transformer_3heads"],
)
def test_parity_with_numpy(arch, over):
    m = _make(arch, **over)
    sd = randomise_weights(m, seed=1)
    inputs, ids = random_batch(m, b=2, seed=2)
    rng = np.random.default_rng(3)
    assert list(m.carry_spec()) == LATENTS[arch]
    sh = (m.total_len, m.hidden_size)
    sl = (m.total_len, 6 * m.hidden_size)
    z_H = rng.normal(size=(2, *sh)).astype(np.float32)  # teacher-forced random carry
    z_L = rng.normal(size=(2, *sl)).astype(np.float32) if arch == "trm_hier6" else None
    out = m.inner(_unpair(arch, z_H, z_L), inputs, m.gather_puzzle_rows(ids))
    assert list(out["carry"]) == LATENTS[arch]
    out["z_H"], out["z_L"] = _pair(arch, {k: v.numpy() for k, v in out["carry"].items()})
    ref = np_forward(
        arch, sd, np_cfg(m, cycles=False), z_H, z_L, inputs, ids, m.H_cycles, m.L_cycles
    )
    for k in ("logits", "q_halt", "q_continue", "z_H") + (("z_L",) if z_L is not None else ()):
        np.testing.assert_allclose(np.asarray(out[k]), ref[k], atol=2e-5, rtol=1e-5, err_msg=k)
    assert np.abs(out["q_halt"].numpy() + 5).max() > 1e-3  # the randomised q head is exercised


def test_hier6_untouched_slots_keep_their_init():
    m = _make("trm_hier6", L_cycles=2, H_cycles=2)
    inputs, ids = random_batch(m)
    carry = m.initial_carry(3)
    z_H, z_L = (tf.constant(z) for z in _pair("trm_hier6", carry))
    d = m.hidden_size
    for k in range(6):  # fresh carry: slot k = L_inits[k] everywhere
        np.testing.assert_array_equal(z_L.numpy()[1, 4, k * d : (k + 1) * d], m.L_inits.numpy()[k])
    out = m.inner(carry, inputs, m.gather_puzzle_rows(ids))
    new = _pair("trm_hier6", out["carry"])[1]
    assert not np.allclose(new[..., : 2 * d], z_L.numpy()[..., : 2 * d])  # slots 1, 2 updated
    np.testing.assert_array_equal(new[..., 2 * d :], z_L.numpy()[..., 2 * d :])  # 3..6 not
    # Inits: six distinct bf16-valued vectors, none equal to TRM's H_init.
    li = m.L_inits.numpy()
    np.testing.assert_array_equal(li, tf.cast(tf.cast(li, tf.bfloat16), tf.float32).numpy())
    assert len({row.tobytes() for row in li}) == 6 and abs(li.std() - 1) < 0.2
    reset = m.reset_carry(
        tf.constant([True, False, True]), _unpair("trm_hier6", 2 * z_H, 3 * z_L.numpy())
    )
    zh, zl = (tf.constant(z) for z in _pair("trm_hier6", reset))
    np.testing.assert_array_equal(zl.numpy()[0], z_L.numpy()[0])
    np.testing.assert_array_equal(zl.numpy()[1], 3 * z_L.numpy()[1])
    np.testing.assert_array_equal(zh.numpy()[2, 0], m.H_init.numpy())
    with pytest.raises(ValueError, match="L_cycles <= 6"):
        TRMHier6(**dict(SMALL, L_cycles=7))
    with pytest.raises(ValueError, match="L_cycles <= 6"):  # also a per-call depth
        m.inner(carry, inputs, m.gather_puzzle_rows(ids), cycles=(1, 7))


def test_carry_init_shapes_and_fresh_q():
    for arch in CLASSES:
        m = _make(arch)
        inputs, ids = random_batch(m)
        carry = m.initial_carry(3)
        spec = m.carry_spec()
        assert list(carry) == list(spec) == LATENTS[arch]
        for k, v in carry.items():
            assert v.shape == (3, m.total_len, m.hidden_size) == (3, *spec[k].shape)
        z_H = carry[LATENTS[arch][0]]
        out = m.inner(carry, inputs, m.gather_puzzle_rows(ids))
        assert out["logits"].shape == (3, m.seq_len, m.vocab_size)
        assert {k: v.shape for k, v in out["carry"].items()} == {
            k: v.shape for k, v in carry.items()
        }
        np.testing.assert_array_equal(out["q_halt"].numpy(), -5.0)
        init = {"trm_singlez": m.L_init, "trm_hier6": m.H_init, "transformer": m.H_init}[arch]
        np.testing.assert_array_equal(z_H.numpy()[2, 3], init.numpy())
    assert _make("transformer").puzzle_emb_len == 1  # reference rule ceil(ndim / D)
    with pytest.raises(ValueError, match="mlp_t"):
        TransformerBaseline(**dict(SMALL_TF, mlp_t=True))


def test_param_counts_by_hand():
    d, v = 32, 7  # SMALL
    i_ch = 256  # ceil_256(round(4 * 32 * 2/3) = 85)
    heads = 2 * v * d + 2 * d + 2
    trm_blk = 4 * d * d + 3 * d * i_ch
    for arch in ("trm_singlez", "trm_hier6"):
        assert _make(arch).num_params() == 2 * trm_blk + heads == 57_858
    tfm = _make("transformer")  # 3 heads of 10: inner width a = 30
    a = 30
    tf_blk = d * 3 * a + a * d + 3 * d * i_ch
    assert tfm.num_params() == 2 * tf_blk + heads == 57_346
    # Reference config (8 layers, 12 heads, D 512, Sudoku V=11): qkv 512x1512, o 504x512.
    full = TransformerBaseline(11, 81, 1)
    assert full.num_params() == 8 * (512 * 1512 + 504 * 512 + 3 * 512 * 1536) + 2 * 11 * 512 + 1026
    assert full.num_params() == 27_144_194
    assert (
        TRMHier6(11, 81, 1).num_params() == 6_828_034
    )  # = TRM-Att (docs/model.md#parameter-counts)
    assert TRMSingleZ(11, 81, 1, mlp_t=True, pos_encodings="none").num_params() == 5_028_866


def _loss(out):
    return tf.reduce_sum(tf.square(out["logits"])) + tf.reduce_sum(
        out["q_halt"] * out["q_continue"]
    )


@pytest.mark.parametrize("arch", list(CLASSES))
def test_gradient_only_through_the_last_cycle(arch):
    m = _make(arch, H_cycles=3)
    randomise_weights(m, seed=4)
    inputs, ids = random_batch(m)
    calls = []
    names = ["net", "net_plain"] if arch == "trm_singlez" else ["net"]
    for name in names:
        orig = getattr(m, name)

        def spy(*a, _orig=orig, _name=name):
            y = _orig(*a)
            calls.append((_name, y))
            return y

        setattr(m, name, spy)
    carry = {k: tf.Variable(z) for k, z in m.initial_carry(3).items()}
    with tf.GradientTape(persistent=True) as tape:
        rows = m.gather_puzzle_rows(ids)
        tape.watch(rows)
        out = m.inner(carry, inputs, rows, training=True)
        loss = _loss(out)
    per_cycle = {"trm_singlez": 3, "trm_hier6": 3, "transformer": None}[arch]  # n + 1
    n_total = 3 * per_cycle if per_cycle else 1
    assert len(calls) == n_total
    if arch == "trm_singlez":
        assert [c[0] for c in calls] == ["net", "net", "net_plain"] * 3
    n_nograd = n_total - (per_cycle or 1)
    recorded = [
        any(g is not None for g in tape.gradient(y, m.trainable_variables)) for _, y in calls
    ]
    assert recorded == [False] * n_nograd + [True] * (n_total - n_nograd)
    g_vars = tape.gradient(loss, m.trainable_variables)
    assert all(
        g is not None and float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in g_vars
    )
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, rows)))) > 0  # puzzle row via x
    assert tape.gradient(loss, list(carry.values())) == [None] * len(carry)  # carry detached


@pytest.mark.slow  # XLA-compiles every arch
@pytest.mark.parametrize("arch", list(CLASSES))
def test_build_model_and_xla_trace(arch):
    cfg = dict(
        arch=arch,
        hidden_size=20,
        num_heads=3 if arch == "transformer" else 2,  # transformer: head_dim 6, inner width 18
        H_cycles=2,
        L_cycles=1,
        mlp_t=False,
        pos_encodings="rope",
        puzzle_emb_ndim=20,
        puzzle_emb_len=2,
    )
    cfg = {k: v for k, v in cfg.items() if k in model_keys(arch)}  # e.g. HRM takes no mlp_t
    m = build_model(cfg, vocab_size=5, seq_len=4, num_puzzle_identifiers=3)
    assert isinstance(m.recursion, RECURSIONS[arch]) and m.built and m.total_len == 6
    randomise_weights(m, seed=6)
    inputs, ids = random_batch(m)
    carry = m.initial_carry(3)

    def f(carry):
        with tf.GradientTape() as tape:
            rows = m.gather_puzzle_rows(ids)
            tape.watch(rows)
            out = m.inner(carry, inputs, rows, training=True)
            loss = _loss(out)
        return loss, tape.gradient(loss, m.trainable_variables + [rows]), out["carry"]

    le, ge, zle = f(carry)
    lj, gj, zlj = tf.function(f, jit_compile=True)(carry)
    zle, zlj = (tf.concat(list(c.values()), -1) for c in (zle, zlj))
    np.testing.assert_allclose(lj.numpy(), le.numpy(), rtol=1e-4)
    np.testing.assert_allclose(zlj.numpy(), zle.numpy(), atol=1e-4)
    for a, b in zip(ge, gj):
        a, b = tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * np.abs(a).max())
    # get_config round trip builds the same architecture.
    m2 = ReasoningBackbone.from_config(m.get_config())
    m2.build_variables()
    assert m2.num_params() == m.num_params() and m2.carry_spec() == m.carry_spec()
    assert type(m2.recursion) is type(m.recursion) and m2.get_config() == m.get_config()


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return build_tiny_sudoku(str(tmp_path_factory.mktemp("tfds")))


@pytest.mark.slow  # builds and traces a trainer per arch
@pytest.mark.parametrize("arch", list(CLASSES))
def test_one_train_step_through_the_trainer(arch, spec):
    c = small_config(spec.data_dir)
    c.model.arch = arch
    c.model.mlp_t, c.model.pos_encodings = False, "rope"
    for key in set(c.model.keys()) - model_keys(arch):  # e.g. the transformer takes no windows
        del c.model[key]
    c.model.num_heads = 3 if arch == "transformer" else 2
    c.model.H_cycles, c.model.L_cycles = 1, 2  # small graphs: the trace dominates the runtime
    strategy = tf.distribute.get_strategy()
    trainer = Trainer(c, strategy, spec, total_steps=4)
    m = trainer.model
    assert isinstance(m.recursion, RECURSIONS[arch])
    assert list(trainer.carry.latent_keys) == LATENTS[arch]
    for k in LATENTS[arch]:
        assert tuple(trainer.carry.vars[k].shape) == (16, *m.carry_spec()[k].shape)
    before = [v.numpy().copy() for v in m.trainable_variables]
    it = iter(input_pipeline.distribute_train(strategy, spec, 16, 0))
    trainer.train_loop(it, 1)
    metrics = trainer.read_metrics(1)
    assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, m.trainable_variables)]
    assert sum(changed) >= len(changed) - 1  # q_head kernel may stay 0 after one sign step
    carry = trainer.carry.read()
    assert int(tf.reduce_max(carry["steps"])) == 1
    if arch == "trm_hier6":  # latents past L_cycles = 2: still their init after reset + step
        for k in (3, 4, 5, 6):
            np.testing.assert_array_equal(
                carry[f"z_L{k}"].numpy(),
                np.broadcast_to(m.L_inits.numpy()[k - 1], carry[f"z_L{k}"].shape),
            )
