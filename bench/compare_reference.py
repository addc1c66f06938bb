r"""Runs the PyTorch reference and this port from ONE set of weights through N supervision steps of the
ACT carry and prints how far apart their outputs are.

  python bench/compare_reference.py --reference=DIR --torch_python=PATH [--steps=6 --halt_max_steps=4] \
      [--variants=mlp_t,attention] [--dtype=float32|bfloat16] [--controls] [--layer_check] \
      [--batch=4 --hidden=64 --H=2 --L=2]

DIR is a checkout of SamsungSAILMontreal/TinyRecursiveModels; PATH a Python with torch, einops and
pydantic (default: this Python). Without either, the script prints one "skipped: ..." line and exits 0.

The reference side runs in a subprocess of PATH (this script runs with TensorFlow, the reference needs
torch): it imports `models.recursive_reasoning.trm` from DIR at run time (nothing of it is copied here),
builds the ACT model with its own random initialisation (plus random Q-head weights and puzzle rows,
which it initialises to zero, where a wrong wiring would not show), runs the supervision steps in
evaluation mode (a slot halts at halt_max_steps and is reloaded with the batch at the next step) and
writes its state_dict and per-step outputs to a temporary .npz. This side loads that state_dict through
`trm_tf.models.interop.load_reference_state_dict`, runs the same steps with `act.begin_step` /
`model.inner` / `act.halting`, and prints, per variant and step, the max |Δ| of the logits, q_halt and
q_continue and the argmax agreement of the logits; then one JSON line per variant.

Is a low-precision gap only rounding? `--controls` also runs both sides in float32 from the same
weights and prints reference-vs-reference, ours-vs-ours and ours-vs-reference-float32 distances.
`--layer_check` feeds the reference's own inputs of block 0, its parts and the heads through ours (one
application, nothing amplified) and prints the share of bit-identical outputs per part.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_path_and_env()

# The reference side (sys.argv[1]: JSON with reference_dir, model config, seed, steps, batch/out paths).
TORCH_DRIVER = r"""
import json, sys
import numpy as np
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["reference_dir"])
import torch
from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1 as ACT

data = np.load(cfg["batch"])
batch = {k: torch.from_numpy(data[k]) for k in ("inputs", "labels", "puzzle_identifiers")}
out, sd = {}, None

def capture(model):  # input and output of the first call of block 0, its parts and the heads
    inner = model.inner
    blk = inner.L_level.layers[0]
    mixer = blk.mlp_t if hasattr(blk, "mlp_t") else blk.self_attn
    def hook(name):
        def f(mod, args, kwargs, o):
            if f"cap/{name}_out" not in out:
                x = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
                out[f"cap/{name}_in"], out[f"cap/{name}_out"] = x.float().numpy(), o.float().numpy()
        return f
    parts = {"block": blk, "mixer": mixer, "mlp": blk.mlp, "lm_head": inner.lm_head, "q_head": inner.q_head}
    for name, m in parts.items():
        m.register_forward_hook(hook(name), with_kwargs=True)
    with torch.no_grad():
        out["cap/emb_out"] = inner._input_embeddings(batch["inputs"], batch["puzzle_identifiers"]).float().numpy()
for dtype in cfg["dtypes"]:  # the first builds and initialises; the others load its state_dict
    torch.manual_seed(cfg["seed"])
    model = ACT(dict(cfg["model"], forward_dtype=dtype)).eval()
    if sd is None:
        inner = model.inner
        g = torch.Generator().manual_seed(cfg["seed"] + 1)
        with torch.no_grad():
            inner.q_head.weight.copy_(0.05 * torch.randn(inner.q_head.weight.shape, generator=g))
            if hasattr(inner, "puzzle_emb"):
                w = inner.puzzle_emb.weights
                w.copy_(torch.randn(w.shape, generator=g).to(w.dtype))
        sd = model.state_dict()
        out.update({"sd/" + k: v.detach().float().numpy() for k, v in sd.items()})
        if cfg["layer_check"]:
            capture(model)
    else:
        model.load_state_dict(sd)  # bf16 buffers (H_init, L_init) widen exactly
    carry = model.initial_carry(batch)
    with torch.no_grad():
        for s in range(cfg["steps"]):
            carry, o = model(carry, batch)
            out[f"{dtype}/logits{s}"] = o["logits"].float().numpy()
            out[f"{dtype}/q_halt{s}"] = o["q_halt_logits"].float().numpy()
            out[f"{dtype}/q_continue{s}"] = o["q_continue_logits"].float().numpy()
            out[f"{dtype}/halted{s}"] = carry.halted.numpy()
np.savez(cfg["out"], **out)
print(json.dumps({"torch": torch.__version__}), flush=True)
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reference", default="", help="checkout of TinyRecursiveModels")
    p.add_argument(
        "--torch_python", default=sys.executable, help="python with torch, einops, pydantic"
    )
    p.add_argument("--variants", default="mlp_t,attention")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=6, help="supervision steps")
    p.add_argument("--halt_max_steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq_len", type=int, default=81)
    p.add_argument("--vocab", type=int, default=11)
    p.add_argument("--puzzles", type=int, default=3, help="puzzle identifiers")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--L_layers", type=int, default=2)
    p.add_argument("--H", type=int, default=2)
    p.add_argument("--L", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--controls",
        action="store_true",
        help="with a low-precision --dtype: also run both sides in float32 from the same weights and "
        "print ref-vs-ref, ours-vs-ours and ours-vs-ref-float32 distances (is the gap only rounding?)",
    )
    p.add_argument(
        "--layer_check",
        action="store_true",
        help="feed the reference's --dtype inputs of block 0 (and its token mixer, MLP) and of the "
        "heads through ours and print the share of bit-identical outputs (where do roundings differ?)",
    )
    args = p.parse_args(argv)
    if args.controls and args.dtype == "float32":
        p.error("--controls compares a low-precision --dtype against float32")
    return args


def skip_reason(args) -> str:
    """Why the comparison cannot run here ('' when it can)."""
    trm = os.path.join(args.reference, "models", "recursive_reasoning", "trm.py")
    if not args.reference or not os.path.isfile(trm):
        return f"no reference checkout at --reference={args.reference!r}"
    probe = subprocess.run(
        [args.torch_python, "-c", "import torch, einops, pydantic, numpy"],
        capture_output=True,
        text=True,
    )
    if probe.returncode:
        return f"{args.torch_python} cannot import torch, einops, pydantic and numpy"
    return ""


def model_config(args, variant: str) -> dict:
    """The reference's config fields (our builder takes the same names)."""
    return common.reference_model_config(
        variant=variant,
        batch=args.batch,
        seq_len=args.seq_len,
        vocab=args.vocab,
        puzzles=args.puzzles,
        hidden=args.hidden,
        H=args.H,
        L=args.L,
        L_layers=args.L_layers,
        num_heads=args.num_heads,
        halt_max_steps=args.halt_max_steps,
        dtype=args.dtype,
        puzzle_emb_len=2,
    )


def run_reference(args, cfg: dict, batch_path: str, out_path: str, dtypes: list[str]) -> dict:
    """Runs the reference once per dtype (one state_dict, initialised by the first); its outputs are
    keyed "<dtype>/<output><step>", its weights "sd/<key>"."""
    spec = {"reference_dir": os.path.abspath(args.reference), "model": cfg, "seed": args.seed,
            "steps": args.steps, "batch": batch_path, "out": out_path, "dtypes": dtypes,
            "layer_check": args.layer_check}  # fmt: skip
    proc = subprocess.run(
        [args.torch_python, "-c", TORCH_DRIVER, json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"the reference side failed:\n{proc.stderr[-3000:]}")
    import numpy as np  # noqa: PLC0415

    with np.load(out_path) as z:
        return {k: z[k] for k in z.files}


def build_ours(cfg: dict, sd: dict):
    """Our TRM with the reference's config and state_dict."""
    from trm_tf.models.backbone import ReasoningBackbone  # noqa: PLC0415
    from trm_tf.models.interop import load_reference_state_dict  # noqa: PLC0415

    keys = ("vocab_size", "seq_len", "num_puzzle_identifiers", "hidden_size", "num_heads", "expansion",
            "L_layers", "H_cycles", "L_cycles", "puzzle_emb_ndim", "puzzle_emb_len", "pos_encodings",
            "mlp_t", "forward_dtype")  # fmt: skip
    model = ReasoningBackbone.create("trm", **{k: cfg[k] for k in keys})
    load_reference_state_dict(model, sd)
    return model


def run_ours(cfg: dict, sd: dict, batch: dict, steps: int) -> list[dict]:
    """Our ACT carry in evaluation mode from the reference's weights: per-step numpy outputs."""
    import tensorflow as tf  # noqa: PLC0415

    from trm_tf import act  # noqa: PLC0415

    model = build_ours(cfg, sd)
    b = cfg["batch_size"]
    carry = dict(model.initial_carry(b), steps=tf.zeros([b], tf.int32), halted=tf.ones([b], tf.bool),
                 **{k: tf.zeros_like(v) for k, v in batch.items()})  # fmt: skip
    outs = []
    for _ in range(steps):
        cur = act.begin_step(model, carry, batch)
        rows = model.gather_puzzle_rows(cur["puzzle_identifiers"])
        o = model.inner(cur, cur["inputs"], rows, training=False)
        steps_now = cur["steps"] + 1
        halted = act.halting(steps_now, o["q_halt"], 0, halt_max_steps=cfg["halt_max_steps"],
                             training=False, halt_rule="q_halt")  # fmt: skip
        carry = dict(cur, **o["carry"], steps=steps_now, halted=halted)
        outs.append(
            {k: tf.cast(o[k], tf.float32).numpy() for k in ("logits", "q_halt", "q_continue")}
        )
        outs[-1]["halted"] = halted.numpy()
    return outs


OUTPUTS = ("logits", "q_halt", "q_continue")


def reference_steps(ref: dict, dtype: str, steps: int) -> list[dict]:
    """The reference's outputs of one dtype as per-step dicts (the layout `run_ours` returns)."""
    return [{k: ref[f"{dtype}/{k}{s}"] for k in (*OUTPUTS, "halted")} for s in range(steps)]


def compare(label: str, ours: list[dict], ref: list[dict]) -> list[dict]:
    """Per step: max |Δ| of each output, argmax agreement of the logits, same halted flags."""
    import numpy as np  # noqa: PLC0415

    rows = []
    for s, (o, r) in enumerate(zip(ours, ref, strict=True)):
        d = {k: float(np.abs(o[k] - r[k]).max()) for k in OUTPUTS}
        mean = float(np.abs(o["logits"] - r["logits"]).mean())  # the max alone is a noisy statistic
        agree = float(np.mean(o["logits"].argmax(-1) == r["logits"].argmax(-1)))
        scale = float(np.abs(r["logits"]).max())
        same_halt = bool(np.array_equal(o["halted"], r["halted"]))
        rows.append({"step": s + 1, **{f"max_abs_{k}": v for k, v in d.items()}, "max_abs_ref_logits": scale,
                     "mean_abs_logits": mean, "argmax_agreement": agree, "same_halted": same_halt})  # fmt: skip
        print(
            f"{label:38s} step {s + 1}: max|Δ| logits {d['logits']:.2e} (of max |logit| {scale:.1f}), mean {mean:.1e}  "
            f"q_halt {d['q_halt']:.2e}  "
            f"q_continue {d['q_continue']:.2e}  argmax agreement {100 * agree:.2f}%  "
            f"halted {'same' if same_halt else 'DIFFERENT'}",
            flush=True,
        )
    return rows


def worst(rows: list[dict]) -> dict:
    """Largest |Δ| and lowest argmax agreement over the steps."""
    w = {k: max(r[k] for r in rows) for k in rows[0] if k.startswith("max_abs_")}
    return dict(w, argmax_agreement=min(r["argmax_agreement"] for r in rows))


def layer_check(variant: str, cfg: dict, sd: dict, ref: dict, batch: dict) -> dict:
    """One application of each part, ours on the reference's own inputs (no amplification): the share
    of bit-identical outputs and the max |Δ| per part."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    model = build_ours(cfg, sd)
    blk, rot = model.L_level.blocks[0], model.rotary_emb
    parts = {"block": lambda x: blk(x, rotary=rot), "mlp": blk.mlp, "lm_head": model.lm_head,
             "q_head": model.q_head, "mixer": blk.token_mixer.swiglu if cfg["mlp_t"]
             else lambda x: blk.self_attn(x, rotary=rot)}  # fmt: skip
    rows = model.gather_puzzle_rows(batch["puzzle_identifiers"])
    got = {"emb": model.input_embeddings(batch["inputs"], rows)}
    for name, fn in parts.items():
        got[name] = fn(tf.cast(ref[f"cap/{name}_in"], model.compute_dtype_tf))
    result = {}
    for name, y in got.items():
        want, y = ref[f"cap/{name}_out"], tf.cast(y, tf.float32).numpy()
        same, diff = float(np.mean(y == want)), float(np.abs(y - want).max())
        result[name] = {"identical": same, "max_abs": diff}
        print(
            f"{variant} layer check {name:8s}: {100 * same:6.2f}% bit-identical, max|Δ| {diff:.2e}"
        )
    return result


def compare_variant(args, variant: str, batch: dict, tmp: str) -> dict:
    """The port against the reference at --dtype; with --controls, the float32 controls too:
    (a) reference dtype vs reference float32, (b) ours dtype vs ours float32, (c) ours dtype vs
    reference float32, and ours float32 vs reference float32. If (c) is about (a), the gap at the
    low-precision dtype is rounding amplified by the recursion, not a different rounding recipe."""
    cfg = model_config(args, variant)
    dt = args.dtype
    dtypes = [dt, "float32"] if args.controls else [dt]
    ref = run_reference(
        args, cfg, os.path.join(tmp, "batch.npz"), os.path.join(tmp, f"{variant}.npz"), dtypes
    )
    sd = {k[3:]: v for k, v in ref.items() if k.startswith("sd/")}
    refs = {d: reference_steps(ref, d, args.steps) for d in dtypes}
    ours = {d: run_ours(dict(cfg, forward_dtype=d), sd, batch, args.steps) for d in dtypes}
    result = {"variant": variant, "steps": compare(f"{variant} ours vs ref", ours[dt], refs[dt])}
    if args.layer_check:
        result["layer_check"] = layer_check(variant, dict(cfg, forward_dtype=dt), sd, ref, batch)
    if args.controls:
        pairs = {
            f"ref {dt} vs ref float32": (refs[dt], refs["float32"]),
            f"ours {dt} vs ours float32": (ours[dt], ours["float32"]),
            f"ours {dt} vs ref float32": (ours[dt], refs["float32"]),
            "ours float32 vs ref float32": (ours["float32"], refs["float32"]),
        }
        result["controls"] = {
            name: compare(f"{variant} {name}", a, b) for name, (a, b) in pairs.items()
        }
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    reason = skip_reason(args)
    if reason:
        print(f"skipped: {reason}")
        return
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(args.seed)
    batch = {
        "inputs": rng.integers(1, args.vocab, (args.batch, args.seq_len)).astype(np.int32),
        "labels": rng.integers(2, args.vocab, (args.batch, args.seq_len)).astype(np.int32),
        "puzzle_identifiers": rng.integers(0, args.puzzles, args.batch).astype(np.int32),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "batch.npz"), **batch)
        for variant in args.variants.split(","):
            results.append(compare_variant(args, variant, batch, tmp))
    for r in results:
        extra = {}
        if "controls" in r:
            extra["controls_worst"] = {k: worst(v) for k, v in r["controls"].items()}
        print(json.dumps({**r, "dtype": args.dtype, "worst": worst(r["steps"]), **extra,
                          "loadavg": common.loadavg()}))  # fmt: skip


if __name__ == "__main__":
    main()
