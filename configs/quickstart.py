"""Quickstart: a CPU run on offline generated Sudoku that learns to solve unseen puzzles in ~10 minutes.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/trm_quickstart

Builds `sudoku_extreme/generated_easy` into ~/tensorflow_datasets on first use (no download), then trains a
small TRM-MLP (same code paths as the paper recipe, smaller sizes) and evaluates the EMA weights on held-out
generated puzzles. Watch it with `tensorboard --logdir=/tmp/trm_quickstart`.
"""

from configs import base


def get_config(arg=None):
    config = base.get_config(arg)
    config.experiment_id = "quickstart"
    config.data.config = "generated_easy"
    config.data.build_if_missing = True
    config.model.hidden_size = 64
    config.model.puzzle_emb_ndim = 64
    config.model.num_heads = 2
    config.model.H_cycles = 2
    config.model.L_cycles = 2
    config.model.halt_max_steps = 4
    config.model.forward_dtype = "float32"
    config.optim.lr = 1e-3
    config.optim.puzzle_emb_lr = 1e-3
    config.optim.lr_warmup_steps = 100
    config.optim.weight_decay = 0.1
    config.optim.puzzle_emb_weight_decay = 0.1
    config.optim.ema_rate = 0.99
    config.train.global_batch_size = 64
    config.train.total_steps = 800
    config.train.eval_every_steps = 400
    config.train.steps_per_loop = 50
    config.train.log_every_steps = 50
    config.train.checkpoint_every_steps = 500
    config.eval.global_batch_size = 256
    config.eval.subset_size = 1024
    return config
