"""Weight interchange with the PyTorch reference (docs/model.md#initialisation).

`load_reference_state_dict` imports a reference `state_dict` into a built `ReasoningBackbone`;
`export_reference_state_dict` produces the same layout back, so a round trip is exact;
`write_safetensors` stores one without torch.

Layout rules: a torch Linear weight [out, in] is a Keras Dense kernel [in, out] (transpose);
embeddings, the q_head bias and the buffers (H_init, L_init, puzzle_emb.weights) copy as-is. The qkv row
order (Q heads, K heads, V heads) and the gate/up order of SwiGLU are the same in both frameworks, so no
reordering is needed. Non-persistent reference buffers (rotary tables, sparse-embedding local copies)
are ignored if present.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

_PREFIXES = ("_orig_mod.", "model.")
# Reference buffers that are not state (non-persistent or derived); skipped silently when present.
_IGNORED = (
    "inner.puzzle_emb.local_weights",
    "inner.puzzle_emb.local_ids",
    "inner.rotary_emb.cos_cached",
    "inner.rotary_emb.sin_cached",
)


def _key_map(model) -> dict:
    """Reference key -> (Keras variable, transpose?) for a built backbone (HRM's `H_level` included)."""
    model.build_variables()
    m = {
        "inner.embed_tokens.embedding_weight": (model.embed_tokens.embeddings, False),
        "inner.lm_head.weight": (model.lm_head.kernel, True),
        "inner.q_head.weight": (model.q_head.kernel, True),
        "inner.q_head.bias": (model.q_head.bias, False),
        "inner.H_init": (model._H_init_var, False),
        "inner.L_init": (model._L_init_var, False),
    }
    if model.embed_pos is not None:
        m["inner.embed_pos.embedding_weight"] = (model.embed_pos.embeddings, False)
    if model._puzzle_emb_var is not None:
        m["inner.puzzle_emb.weights"] = (model._puzzle_emb_var, False)
    levels = [("L_level", model.L_level)]
    if getattr(model, "H_level", None) is not None:  # HRM
        levels.append(("H_level", model.H_level))
    for level_name, level in levels:
        _add_blocks(m, f"inner.{level_name}.layers.", level.blocks)
    return m


def _add_blocks(m: dict, prefix: str, blocks) -> None:
    for i, block in enumerate(blocks):
        p = f"{prefix}{i}."
        if block.mlp_t:
            sw = block.token_mixer.swiglu
            m[p + "mlp_t.gate_up_proj.weight"] = (sw.gate_up_proj.kernel, True)
            m[p + "mlp_t.down_proj.weight"] = (sw.down_proj.kernel, True)
        else:
            m[p + "self_attn.qkv_proj.weight"] = (block.self_attn.qkv_proj.kernel, True)
            m[p + "self_attn.o_proj.weight"] = (block.self_attn.o_proj.kernel, True)
        m[p + "mlp.gate_up_proj.weight"] = (block.mlp.gate_up_proj.kernel, True)
        m[p + "mlp.down_proj.weight"] = (block.mlp.down_proj.kernel, True)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def _to_numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor; bf16 has no numpy dtype, go through float32
        v = v.detach().cpu()
        if str(v.dtype) in ("torch.bfloat16", "torch.float16"):
            v = v.float()
        return v.numpy()
    return np.asarray(v)


_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _read_safetensors(data: bytes) -> dict:
    """Minimal safetensors reader (format: u64 header length, JSON header, raw little-endian data)."""
    n = int(np.frombuffer(data[:8], dtype="<u8")[0])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":  # bf16 = upper 16 bits of a float32
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(
                raw, dtype=np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
            )
        out[name] = arr.reshape(shape).copy()
    return out


def _bf16_bits(value: np.ndarray) -> np.ndarray:
    """float32 -> the upper 16 bits of its bfloat16 rounding (round to nearest, ties to even)."""
    bits = np.ascontiguousarray(value, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def write_safetensors(path: str, state_dict: Mapping, bf16_keys=()) -> None:
    """Writes a state dict as `.safetensors` (readable here and by the reference's tools), through
    tf.io.gfile (gs:// works).

    Float arrays are stored as F32, those named in `bf16_keys` as BF16 (rounded to nearest even; the
    reference keeps H_init / L_init as bfloat16 buffers), integer and bool arrays as themselves. It lets
    a machine without torch hold a reference checkpoint: convert a `.pt` once where torch is installed
    (`write_safetensors(out, read_state_dict(pt))`).
    """
    names = {np.dtype(v): k for k, v in _SAFETENSORS_DTYPES.items()}
    header, blobs, offset = {}, [], 0
    for key in sorted(state_dict):
        value = np.asarray(_to_numpy(state_dict[key]))
        if key in bf16_keys:
            dtype, raw = "BF16", _bf16_bits(value).tobytes()
        else:
            if value.dtype.kind == "f" and value.dtype != np.float64:
                value = value.astype(np.float32)
            dtype = names[np.dtype(value.dtype)]
            raw = value.astype(value.dtype.newbyteorder("<")).tobytes()
        header[key] = {"dtype": dtype, "shape": list(value.shape),
                       "data_offsets": [offset, offset + len(raw)]}  # fmt: skip
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data on 8 bytes
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(np.array([len(head)], "<u8").tobytes() + head + b"".join(blobs))


def read_state_dict(source) -> dict:
    """Reads a state dict from a mapping, `.npz`, `.safetensors` or `.pt`/`.pth` (torch) path."""
    if isinstance(source, Mapping):
        return {k: _to_numpy(v) for k, v in source.items()}
    path = str(source)
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    if path.endswith(".npz"):
        with np.load(io.BytesIO(data)) as z:
            return {k: z[k] for k in z.files}
    if path.endswith(".safetensors"):
        return _read_safetensors(data)
    # Anything else (.pt, .pth, .bin, extension-less reference checkpoints) is a torch pickle.
    try:
        import torch
    except ImportError as e:
        raise ValueError(
            f"Cannot read {path!r}: not .npz/.safetensors and torch is not importable. Convert "
            "the checkpoint to .npz or .safetensors first."
        ) from e
    sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    return {k: _to_numpy(v) for k, v in sd.items()}


def load_reference_state_dict(model, source, strict: bool = True) -> dict:
    """Loads reference (PyTorch) weights into a `ReasoningBackbone` (any arch).

    Args:
        model: a `ReasoningBackbone` (built on demand).
        source: dict of arrays (numpy or torch tensors) or a path (.npz, .safetensors, or a torch
            file when torch is importable; gs:// works through tf.io.gfile). Keys may carry the
            `_orig_mod.` and/or `model.` prefixes of the reference checkpoints.
        strict: raise if any key is missing or unexpected. Mis-shaped keys always raise.

    Returns:
        dict with the lists `loaded`, `missing` and `unexpected` (reference key names).

    Raises:
        ValueError: listing every missing, unexpected or mis-shaped key.
    """
    raw = read_state_dict(source)
    sd = {}
    for k, v in raw.items():
        sk = _strip(k)
        if sk in _IGNORED:
            continue
        sd[sk] = v
    kmap = _key_map(model)
    missing = sorted(set(kmap) - set(sd))
    unexpected = sorted(set(sd) - set(kmap))
    misshaped = []
    for k in sorted(set(kmap) & set(sd)):
        var, transpose = kmap[k]
        want = tuple(var.shape)[::-1] if transpose else tuple(var.shape)
        if tuple(sd[k].shape) != want:
            misshaped.append(f"{k}: got {tuple(sd[k].shape)}, expected {want}")
    problems = []
    if misshaped:
        problems.append("mis-shaped keys: " + "; ".join(misshaped))
    if strict and missing:
        problems.append("missing keys: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if problems:
        raise ValueError("Reference state_dict does not match the model: " + " | ".join(problems))
    loaded = []
    for k in sorted(set(kmap) & set(sd)):
        var, transpose = kmap[k]
        value = np.asarray(sd[k], dtype=np.float32)
        var.assign(value.T if transpose else value)
        loaded.append(k)
    return {"loaded": loaded, "missing": missing, "unexpected": unexpected}


def reference_variables(model) -> dict:
    """Reference key -> (Keras variable, transposed?) for a built model (built on demand).

    `transposed` is True where the reference holds the transpose of the Keras variable (torch Linear
    weights [out, in] against Dense kernels [in, out]); used to compare gradients or weights in the
    reference's layout.
    """
    return dict(_key_map(model))


def export_reference_state_dict(model) -> dict:
    """Returns the model's weights as a reference state dict (torch layout, float32 numpy arrays).

    Keys have no prefix (`inner.…`), like `TinyRecursiveReasoningModel_ACTV1.state_dict()`.
    H_init / L_init are exported as float32 (their values are bf16-representable).
    """
    out = {}
    for k, (var, transpose) in _key_map(model).items():
        value = np.asarray(tf.convert_to_tensor(var), dtype=np.float32)
        out[k] = np.ascontiguousarray(value.T if transpose else value)
    return out
