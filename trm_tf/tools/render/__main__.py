"""CLI: draws a `python -m trm_tf.tools.solve --dump=steps.npz` file.

python -m trm_tf.tools.render --dump=steps.npz --task=sudoku --out=out.png --gif=out.gif
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from trm_tf.tools.render import TASKS, render_batch


def main(argv: Sequence[str] | None = None) -> int:
    """Renders the dump's puzzles (labels too when the file has them); returns the exit status."""
    ap = argparse.ArgumentParser(
        prog="python -m trm_tf.tools.render", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--dump", required=True, help=".npz written by solve --dump (inputs, preds, q_halt)"
    )
    ap.add_argument("--task", default="sudoku", choices=sorted(TASKS))
    ap.add_argument("--out", default="out.png")
    ap.add_argument("--gif", default=None)
    ap.add_argument("--max_steps", type=int, default=None)
    ap.add_argument("--max_puzzles", type=int, default=8)
    args = ap.parse_args(argv)
    with tf.io.gfile.GFile(args.dump, "rb") as f:
        data = dict(np.load(io.BytesIO(f.read())))
    paths = render_batch(
        args.task,
        data["inputs"],
        data,
        data.get("labels"),
        path=args.out,
        max_steps=args.max_steps,
        gif_path=args.gif,
        max_puzzles=args.max_puzzles,
    )
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
