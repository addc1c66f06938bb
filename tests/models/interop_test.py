"""Tests of reference state-dict import/export (trm_tf.models.interop)."""

import functools
import json
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from trm_tf.models import build_model
from trm_tf.models.backbone import ReasoningBackbone
from trm_tf.models.interop import (
    export_reference_state_dict,
    load_reference_state_dict,
    read_state_dict,
    write_safetensors,
)

TRM = functools.partial(ReasoningBackbone.create, "trm")

CFG = dict(
    vocab_size=7,
    seq_len=5,
    num_puzzle_identifiers=3,
    hidden_size=16,
    num_heads=2,
    H_cycles=1,
    L_cycles=1,
    puzzle_emb_ndim=16,
    puzzle_emb_len=2,
)


def _model(seed=0, **over):
    cfg = dict(CFG, seed=seed)
    cfg.update(over)
    m = TRM(**cfg)
    m.build_variables()
    return m


def _assert_same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)


def test_export_keys_and_layouts():
    m = _model(mlp_t=True, pos_encodings="none")
    sd = export_reference_state_dict(m)
    t = m.total_len
    assert sd["inner.L_level.layers.0.mlp_t.gate_up_proj.weight"].shape == (2 * 256, t)
    assert sd["inner.L_level.layers.1.mlp_t.down_proj.weight"].shape == (t, 256)
    assert sd["inner.L_level.layers.0.mlp.gate_up_proj.weight"].shape == (512, 16)
    assert sd["inner.q_head.weight"].shape == (2, 16) and sd["inner.q_head.bias"].shape == (2,)
    assert sd["inner.embed_tokens.embedding_weight"].shape == (7, 16)
    assert sd["inner.puzzle_emb.weights"].shape == (3, 16)
    assert sd["inner.H_init"].shape == (16,)
    np.testing.assert_array_equal(sd["inner.lm_head.weight"], m.lm_head.kernel.numpy().T)
    att = export_reference_state_dict(_model(pos_encodings="learned"))
    assert att["inner.L_level.layers.0.self_attn.qkv_proj.weight"].shape == (48, 16)
    assert att["inner.embed_pos.embedding_weight"].shape == (7, 16)
    assert not any("mlp_t" in k for k in att)
    # Exactly the trainable parameters plus the three buffers.
    n_train = sum(v.size for k, v in att.items() if k not in _BUFFERS)
    assert n_train == _model(pos_encodings="learned").num_params()


_BUFFERS = ("inner.H_init", "inner.L_init", "inner.puzzle_emb.weights")


def test_round_trip_with_prefixes_and_outputs():
    a = _model(seed=0)
    a.puzzle_emb.assign(np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32))
    sd = export_reference_state_dict(a)
    b = _model(seed=1)
    compiled = {"_orig_mod.model." + k: v for k, v in sd.items()}
    compiled["_orig_mod.model.inner.rotary_emb.cos_cached"] = np.zeros((7, 8))  # ignored buffer
    info = load_reference_state_dict(b, compiled)
    assert sorted(info["loaded"]) == sorted(sd) and not info["missing"] and not info["unexpected"]
    _assert_same_weights(a, b)
    inputs = np.arange(10).reshape(2, 5) % 7
    ids = np.array([2, 0], np.int32)
    za, zb = a.initial_carry(2), b.initial_carry(2)
    oa = a.inner(za, inputs, a.gather_puzzle_rows(ids))
    ob = b.inner(zb, inputs, b.gather_puzzle_rows(ids))
    for x, y in zip(tf.nest.flatten(oa), tf.nest.flatten(ob)):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    c = _model(seed=2)
    load_reference_state_dict(c, {"model." + k: v for k, v in sd.items()})
    _assert_same_weights(a, c)


def test_error_messages():
    m = _model()
    sd = export_reference_state_dict(m)
    missing = dict(sd)
    del missing["inner.lm_head.weight"]
    with pytest.raises(ValueError, match=r"missing keys: inner\.lm_head\.weight"):
        load_reference_state_dict(m, missing)
    info = load_reference_state_dict(m, missing, strict=False)
    assert info["missing"] == ["inner.lm_head.weight"]
    extra = dict(sd, **{"inner.bogus.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"unexpected keys: inner\.bogus\.weight"):
        load_reference_state_dict(m, extra)
    bad = dict(sd)
    bad["inner.q_head.weight"] = np.zeros((16, 2), np.float32)  # Keras layout passed by mistake
    with pytest.raises(
        ValueError, match=r"inner\.q_head\.weight: got \(16, 2\), expected \(2, 16\)"
    ):
        load_reference_state_dict(m, bad, strict=False)
    # A failed load leaves the model untouched.
    np.testing.assert_array_equal(m.q_head.kernel.numpy(), 0.0)


def _write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, (dtype, arr_bytes, shape) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [off, off + len(arr_bytes)],
        }
        blobs.append(arr_bytes)
        off += len(arr_bytes)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_npz_and_safetensors_files(tmp_path):
    a = _model(seed=0)
    sd = export_reference_state_dict(a)
    npz = tmp_path / "w.npz"
    np.savez(npz, **sd)
    b = _model(seed=3)
    load_reference_state_dict(b, str(npz))
    _assert_same_weights(a, b)
    # safetensors with F32 tensors and the init buffers stored as BF16 (as in the reference).
    tensors = {}
    for k, v in sd.items():
        if k in ("inner.H_init", "inner.L_init"):
            bits = (v.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
            tensors[k] = ("BF16", bits.tobytes(), v.shape)
        else:
            tensors[k] = ("F32", v.astype("<f4").tobytes(), v.shape)
    st = tmp_path / "w.safetensors"
    _write_safetensors(st, tensors)
    read = read_state_dict(str(st))
    np.testing.assert_array_equal(read["inner.H_init"], sd["inner.H_init"])  # bf16-exact values
    c = _model(seed=4)
    load_reference_state_dict(c, str(st))
    _assert_same_weights(a, c)
    assert tf.reduce_all(c.H_init == a.H_init)


def test_write_safetensors_round_trip_and_bf16_rounding(tmp_path):
    a = _model(seed=0)
    sd = export_reference_state_dict(a)
    sd["inner.L_init"] = np.array(
        [1.0, 1 + 2**-9, 1 + 3 * 2**-9, -(1 + 2**-8 + 2**-12)] * 4, np.float32
    )
    sd["step"] = np.array([7, 8], np.int64)
    path = str(tmp_path / "w.safetensors")
    write_safetensors(path, sd, bf16_keys=("inner.H_init", "inner.L_init"))
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    assert (8 + n) % 8 == 0
    assert header["inner.L_init"]["dtype"] == "BF16" and header["step"]["dtype"] == "I64"
    assert header["inner.lm_head.weight"]["dtype"] == "F32"
    back = read_state_dict(path)
    assert sorted(back) == sorted(sd)
    for k in sd:
        if k != "inner.L_init":
            np.testing.assert_array_equal(back[k], sd[k], err_msg=k)
    # Round to nearest, ties to even: as TF's own float32 -> bfloat16 cast.
    want = tf.cast(tf.cast(sd["inner.L_init"], tf.bfloat16), tf.float32).numpy()
    np.testing.assert_array_equal(back["inner.L_init"], want)
    assert back["inner.L_init"][1] == 1.0 and back["inner.L_init"][2] == 1 + 2**-7


# ------------------------------------------------------------------ checkpoints of earlier code

_V1 = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "model_v1"
)


def _v1_cases():
    with open(os.path.join(_V1, "cases.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("case", sorted(_v1_cases()["cases"]))
def test_restores_checkpoints_of_the_pre_backbone_classes(case):
    """A checkpoint written by the old TRM / HRM / TRMHier6 subclasses restores into today's model
    (every saved object matched) and gives the recorded outputs of two supervision steps."""
    meta = _v1_cases()
    cfg = dict(meta["cases"][case], seed=0)  # other initial weights: only the restore can match
    m = build_model(cfg, **meta["data"])
    ref = np.load(os.path.join(_V1, "outputs.npz"))
    inputs, ids = ref["inputs"], ref["puzzle_identifiers"]
    rows = m.gather_puzzle_rows(ids)
    before = m.inner(m.initial_carry(2), inputs, rows)["logits"].numpy()
    assert not np.allclose(before, ref[f"{case}/logits0"], atol=1e-3)
    status = tf.train.Checkpoint(model=m).read(os.path.join(_V1, case, "ckpt"))
    status.assert_existing_objects_matched()
    rows = m.gather_puzzle_rows(ids)
    carry = m.initial_carry(2)
    for s in range(meta["steps"]):
        out = m.inner(carry, inputs, rows)
        carry = out["carry"]
        for k in ("logits", "q_halt", "q_continue"):
            np.testing.assert_array_equal(out[k].numpy(), ref[f"{case}/{k}{s}"], err_msg=f"{k}{s}")
