"""Benchmark: GFLOP/s of the matmuls of an MLP-T training step, per kernel: XLA:CPU, TF (oneDNN), torch.

  python bench/dot_kernels.py [--hidden=64,128] [--batch=64] [--seq=97] [--expansion=4] [--H=3]
      [--torch_python=PATH] [--repeats=5]

A TRM-MLP step is matmuls plus element-wise work. Its matmuls are the SwiGLUs of the two mixers of a
block, each a [M, K] @ [K, N] product and its two gradients:

* token mixer (over the sequence axis): M = batch * hidden, K = seq (puzzle prefix + sequence), N =
  swiglu_intermediate_size(seq); its down projection swaps K and N;
* channel MLP: M = batch * seq, K = hidden, N = swiglu_intermediate_size(hidden); down swaps K and N.

Each product is timed in the three forms a training step runs: forward `x @ W`, input gradient `dY @ W^T`
and weight gradient `x^T @ dY` (the contraction over M), with three kernels: XLA:CPU
(`tf.function(jit_compile=True)`, what the train step compiles to), TF graph mode (oneDNN) and, with
`--torch_python`, torch (MKL/oneDNN, what the PyTorch reference runs) in a subprocess. In a training step
every product runs forward in all H cycles and as dX and dW in the last (with-gradient) one, so the last
line per size is each kernel's FLOP-weighted rate over that mix: the matmul rate a step could reach with
that kernel if element-wise work were free.

Prints one JSON line per (hidden, product, form) and one summary line per hidden size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FORMS = ("fwd", "dX", "dW")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", default="64,128", help="comma-separated hidden sizes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=97, help="total positions (Sudoku: 81 + prefix 16)")
    p.add_argument("--expansion", type=float, default=4.0)
    p.add_argument("--H", type=int, default=3, help="H_cycles: forward products per dX/dW pair")
    p.add_argument("--repeats", type=int, default=5, help="median of this many timed groups")
    p.add_argument("--torch_python", default="", help="python with torch (adds the torch column)")
    p.add_argument("--torch_child", default="", help=argparse.SUPPRESS)  # JSON shapes, internal
    return p.parse_args(argv)


def products(
    hidden: int, batch: int, seq: int, expansion: float
) -> dict[str, tuple[int, int, int]]:
    """(M, K, N) of the four SwiGLU products of an MLP-T block (one half of each fused gate_up)."""
    from trm_tf.models.primitives import swiglu_intermediate_size

    i_t = swiglu_intermediate_size(seq, expansion)
    i_d = swiglu_intermediate_size(hidden, expansion)
    return {
        "token_up": (batch * hidden, seq, i_t),
        "token_down": (batch * hidden, i_t, seq),
        "channel_up": (batch * seq, hidden, i_d),
        "channel_down": (batch * seq, i_d, hidden),
    }


def operand_shapes(form: str, m: int, k: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Shapes of the two operands of `form` for the product [M, K] @ [K, N]."""
    return {"fwd": ((m, k), (k, n)), "dX": ((m, n), (k, n)), "dW": ((m, k), (m, n))}[form]


def _median_seconds(fn, a, b, repeats: int, calls: int = 8) -> float:
    fn(a, b)  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn(a, b)
        float(out[0, 0])  # waits for the result
        times.append((time.perf_counter() - t0) / calls)
    return sorted(times)[len(times) // 2]


def time_tf(shapes: dict, repeats: int) -> dict:
    """{(product, form): {"xla": GFLOP/s, "tf": GFLOP/s}} with TensorFlow."""
    import numpy as np
    import tensorflow as tf

    ops = {
        "fwd": lambda a, b: tf.matmul(a, b),
        "dX": lambda a, b: tf.matmul(a, b, transpose_b=True),
        "dW": lambda a, b: tf.matmul(a, b, transpose_a=True),
    }
    rng = np.random.default_rng(0)
    out = {}
    for name, (m, k, n) in shapes.items():
        for form in FORMS:
            sa, sb = operand_shapes(form, m, k, n)
            a = tf.constant(rng.standard_normal(sa, dtype=np.float32))
            b = tf.constant(rng.standard_normal(sb, dtype=np.float32))
            row = {}
            for label, jit in (("xla", True), ("tf", False)):
                fn = tf.function(ops[form], jit_compile=jit)
                row[label] = 2 * m * k * n / _median_seconds(fn, a, b, repeats) / 1e9
            out[(name, form)] = row
    return out


def time_torch(shapes: dict, repeats: int) -> dict:
    """{(product, form): GFLOP/s} with torch (runs in the --torch_python child)."""
    import torch

    ops = {
        "fwd": lambda a, b: a @ b,
        "dX": lambda a, b: a @ b.t(),
        "dW": lambda a, b: a.t() @ b,
    }
    torch.manual_seed(0)
    out = {}
    for name, (m, k, n) in shapes.items():
        for form in FORMS:
            sa, sb = operand_shapes(form, m, k, n)
            a, b = torch.randn(*sa), torch.randn(*sb)
            out[f"{name}/{form}"] = 2 * m * k * n / _median_seconds(ops[form], a, b, repeats) / 1e9
    return out


def torch_column(python: str, shapes: dict, repeats: int) -> dict:
    """Runs this script under `python` in torch mode; {} with a stderr line when that fails."""
    cmd = [python, os.path.abspath(__file__), f"--torch_child={json.dumps(shapes)}"]
    cmd.append(f"--repeats={repeats}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        common.log(f"torch column skipped: {proc.stderr.strip().splitlines()[-1:]}")
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def step_mix_rate(rates: dict, shapes: dict, kernel: str, h_cycles: int) -> float:
    """FLOP-weighted rate of one kernel over a training step's matmuls: every product runs forward in
    all H cycles and as dX and dW in the last one (the with-gradient cycle)."""
    weights = {"fwd": h_cycles, "dX": 1, "dW": 1}
    flops = seconds = 0.0
    for name, (m, k, n) in shapes.items():
        for form in FORMS:
            rate = rates[(name, form)].get(kernel)
            if rate is None:
                return float("nan")
            flops += weights[form] * 2 * m * k * n
            seconds += weights[form] * 2 * m * k * n / rate
    return flops / seconds


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.torch_child:  # the torch subprocess: only torch, no TensorFlow
        shapes = {k: tuple(v) for k, v in json.loads(args.torch_child).items()}
        print(json.dumps(time_torch(shapes, args.repeats)))
        return
    common.setup_path_and_env()
    for hidden in (int(h) for h in args.hidden.split(",")):
        shapes = products(hidden, args.batch, args.seq, args.expansion)
        common.log(f"hidden {hidden}: timing {len(shapes) * len(FORMS)} products x 2 TF kernels")
        rates = time_tf(shapes, args.repeats)
        if args.torch_python:
            for key, value in torch_column(args.torch_python, shapes, args.repeats).items():
                name, form = key.split("/")
                rates[(name, form)]["torch"] = value
        for (name, form), row in rates.items():
            common.print_json(
                {
                    "bench": "dot_kernels",
                    "hidden": hidden,
                    "product": name,
                    "form": form,
                    "mkn": list(shapes[name]),
                    "gflops": {key: round(v, 1) for key, v in row.items()},
                }
            )
        kernels = sorted({key for row in rates.values() for key in row})
        summary = {key: round(step_mix_rate(rates, shapes, key, args.H), 1) for key in kernels}
        common.print_json(
            {
                "bench": "dot_kernels",
                "hidden": hidden,
                "step_mix_gflops": summary,
                "loadavg": common.loadavg(),
                "machine": common.machine_info(),
            }
        )


if __name__ == "__main__":
    main()
