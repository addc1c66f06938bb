"""Downscaled CPU replication of the core ablations (RESULTS.md): baseline vs no-EMA, MLP-T vs attention,
two T/n settings, on a reduced generated Sudoku task with a reduced model, same seed and data for every arm.

  python launch.py --config=configs/replication_cpu.py:variant=baseline --workdir=runs/replication/baseline

Variants: baseline (MLP-T, T=3, n=2, EMA), no_ema, attention (self-attention + RoPE), tn_2_1 (T=2, n=1),
tn_3_4 (T=3, n=4). Data: sudoku_extreme/generated_mid (built on first use, no download).
"""

from configs import args

VARIANTS = ("baseline", "no_ema", "attention", "tn_2_1", "tn_3_4")


def deltas(config, arg):
    config.experiment_id = f"replication_cpu_{arg.variant}"
    config.data.config = "generated_mid"
    config.data.build_if_missing = True
    m = config.model
    m.hidden_size = 64  # model.puzzle_emb_ndim follows
    m.num_heads = 2
    m.H_cycles, m.L_cycles = 3, 2
    m.forward_dtype = "float32"
    config.act.halt_max_steps = 4
    o = config.optim
    o.lr = o.puzzle_emb_lr = 1e-3
    o.weight_decay = o.puzzle_emb_weight_decay = 0.1
    o.lr_warmup_steps = 100
    o.ema_rate = 0.99
    t = config.train
    t.global_batch_size = 64
    t.total_steps, t.eval_every_steps = 600, 200
    t.steps_per_loop = t.log_every_steps = 50
    t.checkpoint_every_steps = 500
    config.eval.global_batch_size, config.eval.subset_size = 250, 1000
    if arg.variant == "no_ema":
        o.ema = False
    elif arg.variant == "attention":
        m.mlp_t, m.pos_encodings = False, "rope"
    elif arg.variant == "tn_2_1":
        m.H_cycles, m.L_cycles = 2, 1
    elif arg.variant == "tn_3_4":
        m.H_cycles, m.L_cycles = 3, 4


def get_config(arg=None):
    return args.build(arg, deltas, VARIANTS, variant="baseline")
