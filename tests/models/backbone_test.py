"""Tests of the reasoning backbone (trm_tf.models.backbone) with the TRM recursion against
docs/model.md and an independent NumPy forward: embeddings, carry, initialisation, parameter counts,
low precision, the model factory and checkpoints (gradients: gradients_test.py; the other recursions:
recursion_test.py)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import reference_numpy
from tests.testing.model_inputs import random_batch, randomise_weights
from tests.testing.small_models import TRM, np_cfg, small_trm
from trm_tf.models import build_model
from trm_tf.models.interop import load_reference_state_dict
from trm_tf.models.recursion import HRMRecursion


@pytest.mark.parametrize(
    "variant",
    [
        dict(mlp_t=False, pos_encodings="rope"),
        dict(mlp_t=True, pos_encodings="none"),
        dict(mlp_t=False, pos_encodings="learned"),
    ],
    ids=["att_rope", "mlp_t", "att_learned"],
)
def test_parity_with_numpy_reference(variant):
    m = small_trm(**variant)
    sd = randomise_weights(m, seed=1)
    inputs, ids = random_batch(m, b=2, seed=2)
    rng = np.random.default_rng(3)
    shape = (2, m.total_len, m.hidden_size)
    z_H = rng.normal(size=shape).astype(np.float32)  # teacher-forced random carry
    z_L = rng.normal(size=shape).astype(np.float32)
    out = m.inner({"z_H": z_H, "z_L": z_L}, inputs, m.gather_puzzle_rows(ids))
    out.update(out.pop("carry"))
    ref = reference_numpy.inner_forward(sd, np_cfg(m), z_H, z_L, inputs, ids)
    np.testing.assert_allclose(
        m.input_embeddings(inputs, m.gather_puzzle_rows(ids)).numpy(), ref["x"], atol=1e-5
    )
    for k in ("logits", "q_halt", "q_continue", "z_H", "z_L"):
        np.testing.assert_allclose(out[k].numpy(), ref[k], atol=2e-5, rtol=1e-5, err_msg=k)
    # The randomised q head actually exercises the q path.
    assert np.abs(out["q_halt"].numpy() + 5).max() > 1e-3


def test_shapes_fresh_q_and_prefix():
    m = small_trm()
    inputs, ids = random_batch(m)
    carry = m.initial_carry(3)
    assert list(carry) == ["z_H", "z_L"] and list(m.carry_spec()) == ["z_H", "z_L"]
    assert m.carry_spec()["z_H"].shape == (m.total_len, m.hidden_size)
    z_H, z_L = carry["z_H"], carry["z_L"]
    assert z_H.shape == (3, m.total_len, m.hidden_size) and z_H.dtype == tf.float32
    np.testing.assert_array_equal(z_H.numpy()[1, 4], m.H_init.numpy())
    np.testing.assert_array_equal(z_L.numpy()[2, 0], m.L_init.numpy())
    out = m.inner(carry, inputs, m.gather_puzzle_rows(ids))
    assert out["logits"].shape == (3, m.seq_len, m.vocab_size)
    assert out["logits"].dtype == tf.float32
    assert out["carry"]["z_H"].shape == z_H.shape and out["carry"]["z_L"].shape == z_L.shape
    np.testing.assert_array_equal(out["q_halt"].numpy(), -5.0)  # weight 0, bias -5
    np.testing.assert_array_equal(out["q_continue"].numpy(), -5.0)
    # Puzzle prefix: position 0 = sqrt(D) * row, positions 1.. exactly zero.
    rng = np.random.default_rng(0)
    m.puzzle_emb.assign(rng.normal(size=m.puzzle_emb.shape).astype(np.float32))
    x = m.input_embeddings(inputs, m.gather_puzzle_rows(ids)).numpy()
    np.testing.assert_allclose(
        x[:, 0], math.sqrt(m.hidden_size) * m.puzzle_emb.numpy()[ids], rtol=1e-6
    )
    np.testing.assert_array_equal(x[:, 1 : m.puzzle_emb_len], 0.0)
    tok = m.embed_tokens.embeddings.numpy()[inputs] * math.sqrt(m.hidden_size)
    np.testing.assert_allclose(x[:, m.puzzle_emb_len :], tok, rtol=1e-6)


def test_reset_carry():
    m = small_trm()
    z = tf.ones((3, m.total_len, m.hidden_size))
    new = m.reset_carry(tf.constant([True, False, True]), {"z_H": z, "z_L": 2 * z})
    zh, zl = new["z_H"], new["z_L"]
    np.testing.assert_array_equal(zh.numpy()[0], np.broadcast_to(m.H_init.numpy(), zh.shape[1:]))
    np.testing.assert_array_equal(zl.numpy()[2, 5], m.L_init.numpy())
    np.testing.assert_array_equal(zh.numpy()[1], 1.0)
    np.testing.assert_array_equal(zl.numpy()[1], 2.0)


def test_init_statistics_and_variable_kinds():
    m = TRM(11, 81, 3, mlp_t=False, pos_encodings="rope")  # full Sudoku-Att width
    m.build_variables()
    qkv = m.L_level.blocks[0].self_attn.qkv_proj.kernel.numpy()
    std = 1 / math.sqrt(512)
    assert abs(qkv.std() - std) < 0.01 * std
    assert np.abs(qkv).max() <= 2 * std / 0.8796256610342398 + 1e-7
    down = m.L_level.blocks[1].mlp.down_proj.kernel.numpy()  # fan_in 1536
    assert abs(down.std() - 1 / math.sqrt(1536)) < 0.02 / math.sqrt(1536)
    emb = m.embed_tokens.embeddings.numpy()
    assert abs(emb.std() - std) < 0.05 * std
    for v in (m.H_init, m.L_init):
        a = v.numpy()
        assert abs(a.std() - 1.0) < 0.1 and np.abs(a).max() <= 2 / 0.8796256610342398
        np.testing.assert_array_equal(a, tf.cast(tf.cast(a, tf.bfloat16), tf.float32).numpy())
    assert not m.H_init.trainable and not m.L_init.trainable and not m.puzzle_emb.trainable
    assert isinstance(m.puzzle_emb, tf.Variable) and m.puzzle_emb.dtype == tf.float32
    np.testing.assert_array_equal(m.puzzle_emb.numpy(), 0.0)
    np.testing.assert_array_equal(m.q_head.kernel.numpy(), 0.0)
    np.testing.assert_array_equal(m.q_head.bias.numpy(), -5.0)
    trainable = {id(v) for v in m.trainable_variables}
    assert id(m._puzzle_emb_var) not in trainable and id(m._H_init_var) not in trainable
    # Same seed -> same weights; different seed -> different.
    m2 = TRM(11, 81, 3, hidden_size=64, num_heads=2, seed=0)
    m3 = TRM(11, 81, 3, hidden_size=64, num_heads=2, seed=0)
    m4 = TRM(11, 81, 3, hidden_size=64, num_heads=2, seed=1)
    for mm in (m2, m3, m4):
        mm.build_variables()
    for a, b, c in zip(m2.weights, m3.weights, m4.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        if "puzzle" not in a.path and "q_head" not in a.path:
            assert not np.array_equal(a.numpy(), c.numpy()), a.path


def test_param_counts():
    mlp = TRM(11, 81, 1, mlp_t=True, pos_encodings="none")
    att = TRM(11, 81, 1, mlp_t=False, pos_encodings="rope")
    assert mlp.num_params() == 5_028_866
    assert att.num_params() == 6_828_034
    assert mlp.total_len == 97 and mlp.puzzle_emb_len == 16 and mlp.hidden_size == 512
    blk = mlp.L_level.blocks[0]
    assert blk.token_mixer.swiglu.intermediate_size == 512 and blk.mlp.intermediate_size == 1536
    maze = TRM(6, 900, 1, L_cycles=4)
    assert maze.num_params() == 6_822_914


@pytest.mark.parametrize("dtype,cdt", [("bfloat16", tf.bfloat16), ("float16", tf.float16)])
def test_low_precision_forward(dtype, cdt):
    m32 = small_trm(mlp_t=True, pos_encodings="none", L_cycles=1, H_cycles=1)
    sd = randomise_weights(m32, seed=7)
    mlo = small_trm(mlp_t=True, pos_encodings="none", L_cycles=1, H_cycles=1, forward_dtype=dtype)
    load_reference_state_dict(mlo, sd)
    assert all(v.dtype == "float32" for v in mlo.weights)
    inputs, ids = random_batch(m32)
    z32 = m32.initial_carry(3)
    zlo = mlo.initial_carry(3)
    assert zlo["z_H"].dtype == cdt and mlo.carry_spec()["z_L"].dtype == cdt
    o32 = m32.inner(z32, inputs, m32.gather_puzzle_rows(ids))
    olo = mlo.inner(zlo, inputs, mlo.gather_puzzle_rows(ids))
    assert olo["carry"]["z_H"].dtype == cdt
    for k in ("logits", "q_halt", "q_continue"):
        assert olo[k].dtype == tf.float32
    scale = float(tf.reduce_max(tf.abs(o32["logits"])))
    err = float(tf.reduce_max(tf.abs(o32["logits"] - olo["logits"])))
    assert err < 0.05 * scale, (err, scale)
    agree = np.mean(np.argmax(o32["logits"], -1) == np.argmax(olo["logits"], -1))
    assert agree > 0.9


def test_build_model_factory():
    cfg = dict(
        arch="trm",
        hidden_size=32,
        num_heads=2,
        H_cycles=2,
        L_cycles=2,
        puzzle_emb_ndim=32,
        puzzle_emb_len=2,
    )
    m = build_model(cfg, vocab_size=11, seq_len=9, num_puzzle_identifiers=4)
    assert m.built and m.total_len == 11 and m.puzzle_emb.shape == (4, 32)
    with pytest.raises(ValueError, match="hiden_size"):
        build_model(dict(hiden_size=3), vocab_size=11, seq_len=9, num_puzzle_identifiers=4)
    with pytest.raises(ValueError, match="arch"):
        build_model(dict(arch="nope"), vocab_size=11, seq_len=9, num_puzzle_identifiers=4)
    with pytest.raises(ValueError, match="puzzle_emb_len"):
        TRM(11, 9, 1, puzzle_emb_ndim=0, puzzle_emb_len=16)
    with pytest.raises(ValueError, match="mlp_t=False"):  # windows are an attention option
        TRM(11, 16, 1, mlp_t=True, attention_window=3)
    hrm_cfg = dict(arch="hrm", hidden_size=32, num_heads=2, H_layers=1, L_layers=1)
    h = build_model(
        dict(hrm_cfg, puzzle_emb_ndim=32), vocab_size=5, seq_len=4, num_puzzle_identifiers=2
    )
    assert isinstance(h.recursion, HRMRecursion) and h.total_len == 5
    with pytest.raises(ValueError, match="mlp_t"):  # HRM has no MLP-T
        build_model(dict(hrm_cfg, mlp_t=True), vocab_size=5, seq_len=4, num_puzzle_identifiers=2)


def test_build_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        m = build_model(
            dict(hidden_size=16, num_heads=2, puzzle_emb_ndim=16, puzzle_emb_len=1),
            vocab_size=5,
            seq_len=4,
            num_puzzle_identifiers=3,
        )
    assert isinstance(m.puzzle_emb, tf.distribute.DistributedValues)
    assert m.num_params() == sum(int(np.prod(v.shape)) for v in m.trainable_variables)


def test_tf_checkpoint_saves_every_variable(tmp_path):
    a = small_trm(mlp_t=True, pos_encodings="learned")
    randomise_weights(a, seed=8)
    path = tf.train.Checkpoint(model=a).save(str(tmp_path / "ck"))
    saved = [n for n, _ in tf.train.list_variables(path) if n.startswith("model/")]
    assert len(saved) == len(a.weights)  # blocks included (not lost in an untracked list)
    b = small_trm(mlp_t=True, pos_encodings="learned", seed=9)
    tf.train.Checkpoint(model=b).restore(path).assert_existing_objects_matched()
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
