"""Quickstart: a CPU run on offline generated Sudoku that learns to solve unseen puzzles in ~10 minutes.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/trm_quickstart
  python launch.py --config=configs/quickstart.py:runlocal --workdir=/tmp/qs   # one-minute smoke run

Builds `sudoku_extreme/generated_easy` into ~/tensorflow_datasets on first use (no download), then trains a
small TRM-MLP (same code paths as the paper recipe, smaller sizes) and evaluates the EMA weights on held-out
generated puzzles. Watch it with `tensorboard --logdir=/tmp/trm_quickstart`.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "quickstart"
    config.data.config = "generated_easy"
    config.data.build_if_missing = True
    m = config.model
    m.hidden_size = 64  # model.puzzle_emb_ndim follows
    m.num_heads = 2
    m.H_cycles = m.L_cycles = 2
    m.forward_dtype = "auto"  # bfloat16 on a CPU with AMX, float32 on others (trm_tf.runtime)
    config.act.halt_max_steps = 4
    o = config.optim
    o.lr = o.puzzle_emb_lr = 1e-3
    o.lr_warmup_steps = 100
    o.weight_decay = o.puzzle_emb_weight_decay = 0.1
    o.ema_rate = 0.99
    t = config.train
    t.global_batch_size = 64
    t.total_steps, t.eval_every_steps = 800, 400
    t.steps_per_loop = t.log_every_steps = 50
    t.checkpoint_every_steps = 500
    config.eval.global_batch_size = 256
    config.eval.subset_size = 1024


def get_config(arg=None):
    return args.build(arg, deltas)
