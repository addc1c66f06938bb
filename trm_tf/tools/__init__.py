"""Command-line tools that work on a trained run: each needs only the run directory.

* `python -m trm_tf.tools.solve --checkpoint=RUN_DIR --puzzle=...`: solves Sudoku puzzles and shows how
  the answer evolves over the supervision steps (`--render` / `--gif` draw it);
* `python -m trm_tf.tools.render --dump=steps.npz`: draws a `solve --dump` file;
* `python -m trm_tf.tools.average_checkpoints --checkpoint=RUN_DIR --last_k=5`: averages the last K
  checkpoints into a new one.

A run directory describes itself (`config.json` holds the full config), so `--checkpoint=RUN_DIR` is
enough; `--config` only overrides it, for a bare checkpoint prefix or a reference PyTorch state_dict.
`restore` holds the shared loading: the config of a run (old config layouts upgraded), the newest
checkpoint of a run, and a restore that names every variable the checkpoint lacks instead of running on
random weights.
"""
