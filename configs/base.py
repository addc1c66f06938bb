"""The one file that lists every configuration field, with the paper's Sudoku TRM-MLP recipe as defaults.

Every config file in `configs/` is built the same way (`configs.args.build`): parse the argument string,
start from `fields()` below, apply the file's deltas, apply `runlocal` LAST (`shrink_for_cpu` below, so a
widened experiment is shrunk too), then `configs.validation.validate`. This file holds the fields only and
imports no other config module; it is not a config file itself (`configs/e1_1_baseline.py` runs its
recipe, `configs.args.build(None)` returns it validated). Defaults reproduce the reference command `pretrain_mlp_t_sudoku`
(docs/model.md#training-loop): global batch 768, lr 1e-4, puzzle-embedding lr 1e-4, weight decay 1.0,
warm-up 2000 steps then constant, EMA 0.999, T=H_cycles=3, n=L_cycles=6, N_sup=16, hidden 512, MLP-T
mixer without position encoding, 50,000 epochs, an evaluation every 5,000 epochs, bfloat16 forward.

Sections have one meaning each:
  data        which TFDS dataset and how hosts read it;
  model       exactly the keywords `trm_tf.models.build_model` passes to the model of `model.arch`
              (nothing else: it rejects unknown keys), so the section is the architecture;
  act         the ACT wrapper and loss head around the model: supervision steps, exploration, halting
              target, loss type and the opt-in penalties;
  curriculum, optim, train, eval   as named;
  runtime     how this process runs (devices, input pipelines, XLA, precision, memory check).

Tied values are `FieldReference`s: `model.puzzle_emb_ndim` follows `model.hidden_size` and
`eval.global_batch_size` follows `train.global_batch_size` until they are set themselves (then the tie
is broken for that config only), so `--config.model.hidden_size=256` moves the puzzle vector with it.
`None` means "derived" (train.total_steps, train.eval_every_steps, eval.halt_max_steps,
act.halt_exploration_final); the trainer derives each once (`trm_tf.trainer.resolve_schedule`, `Trainer`).

The config argument string (`--config=configs/x.py:ARG`) is a comma-separated list of `key=value` or bare
`key` (meaning True): `runlocal` shrinks any config to a CPU smoke run of about a minute, `seed=N` sets the
seed. Unknown keys are an error.
"""

import ml_collections
from ml_collections import config_dict


def tie(node: ml_collections.ConfigDict, key: str) -> config_dict.FieldReference:
    """A value that follows `node.key` until it is assigned itself.

    A plain `node.get_ref(key)` is the SAME reference: assigning the tied field would write through to
    `key` (setting puzzle_emb_ndim=0 would zero hidden_size). The derived reference returned here is a
    reference of its own; assigning it replaces its value and leaves `key` alone.
    """
    ref = node.get_ref(key)
    return ref.to_int() if isinstance(node[key], int) else ref.to_float()


def fields(seed: int = 0) -> ml_collections.ConfigDict:
    """Every field with its default: the paper recipe, neither shrunk nor validated (`configs.args.build`
    does both; `args.build(None)` is this recipe validated, `configs/e1_1_baseline.py` runs it).

    One long function on purpose: it is the declarative table of the whole configuration, one field a
    line with its comment, section by section, read top to bottom; splitting it would scatter the one
    place a reader looks a field up in.
    """
    c = ml_collections.ConfigDict()
    c.experiment_id = (
        "base"  # Run name in logs and summaries; experiment files set their E-id here.
    )
    c.seed = seed  # Seeds model init, data order, and the ACT exploration draws.

    # --- Data: a TFDS dataset built by tfds_builders/<name> (see BUILD.md for the `tfds build` commands).
    c.data = ml_collections.ConfigDict()
    c.data.name = "sudoku_extreme"
    c.data.config = "sub1000_aug1000"  # 1000 puzzles x (1 + 1000 augmentations), the paper's data.
    c.data.data_dir = "~/tensorflow_datasets"  # Local path or gs://bucket/tfds.
    # When the dataset is missing, build it first (only for offline generated configs; others say how).
    c.data.build_if_missing = False
    c.data.manual_dir = ""  # Folder with the source CSV/JSON files, for build_if_missing.
    c.data.prefetch = 4  # Batches prefetched per host (autotune is off: it stalls short runs).
    # Multi-host input (trm_tf.data.input_pipeline): "groups" = each host keeps the puzzle groups
    # g % hosts == host (a puzzle's examples never split across hosts; needed for ARC); "files" = each host
    # reads its own TFRecord files (only for one-example puzzles: Sudoku, Maze); "stream" = each host keeps
    # its replicas' share of one global stream (every topology sees a single-device run's batches);
    # "auto" = "files" when every puzzle has one example, else "groups".
    c.data.host_sharding = "auto"

    # --- Model (docs/model.md#architecture): the keywords of the model of `arch` (MODEL_KEYS), nothing
    # else. Archs without a TRM switch (HRM: mlp_t, attention_window) have the key deleted by their preset.
    c.model = ml_collections.ConfigDict()
    c.model.arch = "trm"  # trm | trm_singlez | trm_hier6 | hrm | transformer.
    c.model.hidden_size = 512
    c.model.num_heads = 8  # Unused by the MLP-T mixer.
    c.model.expansion = 4.0  # SwiGLU width factor before the reference's rounding up to 256.
    c.model.L_layers = 2  # Blocks in the single shared network.
    c.model.H_cycles = 3  # T: the first T-1 cycles run without gradient.
    c.model.L_cycles = 6  # n: latent updates per cycle.
    c.model.mlp_t = True  # True = MLP over the sequence (TRM-MLP), False = self-attention.
    # 0 = full attention (reference); odd w = w x w windows on the grid + global prefix (contrib05).
    c.model.attention_window = 0
    c.model.pos_encodings = "none"  # rope | learned | none.
    # Width of the learned puzzle vector (prefix position 0); follows hidden_size unless set.
    c.model.puzzle_emb_ndim = tie(c.model, "hidden_size")
    c.model.puzzle_emb_len = 16  # Prefix positions; only the first carries the puzzle vector.
    c.model.rms_norm_eps = 1e-5
    c.model.rope_theta = 10000.0
    c.model.forward_dtype = "bfloat16"  # auto | float32 | bfloat16 | float16 (auto: per machine)
    c.model.remat = False  # Recompute the with-gradient cycle in backward (tf.recompute_grad).

    # --- ACT wrapper and loss head (docs/model.md#halting, #losses): trm_tf/act.py and
    # trm_tf/losses.py read these; the model never sees them.
    c.act = ml_collections.ConfigDict()
    c.act.halt_max_steps = 16  # N_sup: supervision steps per example.
    c.act.halt_exploration_prob = 0.1  # Chance that a slot draws a random minimum step count.
    # Adaptive exploration (contrib02): anneal halt_exploration_prob linearly to this value over
    # training (None = constant, the reference).
    c.act.halt_exploration_final = config_dict.placeholder(float)
    c.act.loss_type = "stablemax"  # stablemax | softmax.
    # Compute-aware halting (E4.2): loss += halt_penalty * sum(1 - sigmoid(q_halt)); 0 = reference.
    c.act.halt_penalty = 0.0
    # Recursion regulariser (contrib04): loss += recursion_reg * sum_b mean (z_H(T) - z_H(T-1))^2.
    c.act.recursion_reg = 0.0
    # Training halting test: "q_halt" = TRM's q_halt > 0; "q_halt_vs_continue" = q_halt > q_continue,
    # the rule of HRM and of the transformer baseline (both presets set it).
    c.act.halt_rule = "q_halt"
    # Q-learning target of q_continue: True = HRM's bootstrapped target (one extra forward; needs
    # halt_rule "q_halt_vs_continue"). False = no q_continue loss: TRM (which never reads q_continue)
    # and the transformer baseline (which compares with a q_continue that only weight decay moves).
    c.act.q_continue_target = False

    # --- Curriculum recursion (contrib01 / E4.1): H and L cycles grow from start values to the model's
    # values in equal stages over the first `ramp_fraction` of training. Off = the reference.
    c.curriculum = ml_collections.ConfigDict()
    c.curriculum.enabled = False
    c.curriculum.start_H_cycles = 1
    c.curriculum.start_L_cycles = 2
    c.curriculum.num_stages = 3  # Stages, including the final (full-depth) one.
    c.curriculum.ramp_fraction = 0.5  # Fraction of total steps before full depth is reached.

    # --- Optimisation (docs/model.md#optimizers).
    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam_atan2"  # A key of trm_tf.optim.OPTIMIZERS (validation.OPTIMIZER_NAMES).
    c.optim.lr = 1e-4
    c.optim.lr_min_ratio = 1.0  # 1.0 = constant after warm-up (all reference runs).
    c.optim.lr_warmup_steps = 2000
    c.optim.beta1 = 0.9
    c.optim.beta2 = 0.95
    c.optim.weight_decay = 1.0  # Decoupled: p <- p * (1 - lr * wd) every step, on every weight.
    c.optim.puzzle_emb_lr = 1e-4  # Sparse sign-SGD on the puzzle-embedding rows in the batch.
    c.optim.puzzle_emb_weight_decay = 1.0
    c.optim.ema = True
    c.optim.ema_rate = 0.999

    # --- Training loop.
    c.train = ml_collections.ConfigDict()
    c.train.global_batch_size = 768  # Split evenly over replicas (must divide).
    c.train.epochs = 50000  # In groups (base puzzles), as the reference counts them.
    # None: derived as epochs * groups * mean examples / global batch.
    c.train.total_steps = config_dict.placeholder(int)
    c.train.eval_interval_epochs = 5000
    c.train.eval_every_steps = config_dict.placeholder(int)  # None: from eval_interval_epochs.
    c.train.steps_per_loop = 100  # Steps compiled into one tf.function call (no host round trip).
    c.train.log_every_steps = 100  # Rounded to a multiple of steps_per_loop.
    c.train.checkpoint_every_steps = 1000  # Rounded to a multiple of steps_per_loop.
    c.train.max_checkpoints = 3
    c.train.profile_start_step = -1  # First step of the profiler window (-1: no trace).
    c.train.profile_num_steps = 5
    c.train.profiler_port = 0  # >0: start a profiler server on the chief for on-demand capture.
    # Early stopping: stop after this many evaluations without a new best `eval.best_metric` (0: off);
    # the run then ends as finished (its final evaluation included) with `stop_reason` "early_stop".
    c.train.early_stop_evals = 0

    # --- Evaluation.
    c.eval = ml_collections.ConfigDict()
    c.eval.global_batch_size = tie(c.train, "global_batch_size")  # Follows the train batch.
    c.eval.subset_size = (
        4096  # Test examples used by periodic evals (-1: all); the final eval uses all.
    )
    c.eval.final_full = True
    # ARC periodic evaluations: every augmented test row of this many tasks, drawn once from `seed` (the
    # same tasks each time; scored over them only); -1: every task (the paper ARC configs, as the
    # reference: then ARC/pooled/pass@2 is its logged pass@2). eval.subset_size is not used for ARC.
    c.eval.arc_subset_tasks = 40
    c.eval.use_ema = True  # Evaluate the EMA weights (as the reference) when optim.ema is on.
    # Test-time recursion: supervision steps at evaluation (None = act.halt_max_steps, the reference).
    # Every evaluation also reports the adaptive-halting accuracy and mean steps (each example stopped
    # at its first q_halt > 0; E4.2), whatever this value.
    c.eval.halt_max_steps = config_dict.placeholder(int)
    # Checkpoint averaging (E4.4): also evaluate the mean weights of the last K checkpoints (0 = off).
    c.eval.average_last_k = 0
    # The evaluators of every evaluation (trm_tf.evaluators.EVALUATORS): "accuracy" (token, exact and
    # per-step accuracy), "arc" (ARC pass@K voting over augmented copies; arc_agi datasets only).
    c.eval.evaluators = ("accuracy",)
    # Best checkpoint: every evaluation compares this metric with the best so far and keeps the best
    # weights in workdir/best (never pruned). "auto": the task's headline, `ARC/pass@2` (this checkpoint's
    # votes) for ARC, else `exact_accuracy`. Metrics with "loss" in their name are minimised.
    c.eval.best_metric = "auto"

    # --- Runtime.
    c.runtime = ml_collections.ConfigDict()
    c.runtime.num_logical_cpus = (
        1  # >1 splits the CPU into logical devices (MirroredStrategy tests).
    )
    # "per_host": one input pipeline per host (what every strategy does); "per_replica": one pipeline per
    # replica, so N logical CPUs in one client emulate the N hosts of a pod (the pod rehearsal).
    c.runtime.input_pipelines = "per_host"
    # float32 matmul precision on TPU: "auto" = HIGHEST when model.forward_dtype is float32 (else the
    # TPU's DEFAULT single bf16 pass), or "highest" / "default".
    c.runtime.matmul_precision = "auto"
    # HBM per accelerator chip in GiB for the start-up memory check (v4: 32, v5e: 16, v5p: 95, v6e: 32).
    c.runtime.hbm_gib = 32.0
    c.runtime.memory_check = (
        True  # Refuse to start a config whose per-chip estimate exceeds hbm_gib.
    )
    # Seconds to wait for every worker / TPU host to join before giving up with one line naming them.
    c.runtime.peer_timeout_s = 300
    # XLA for forward/backward (the optimizer runs outside it): "auto" | "true" | "false". "auto" is
    # XLA except an attention model on CPU, where oneDNN is ~1.4x faster (trm_tf.distribute).
    c.runtime.jit_compile = "auto"
    return c


def shrink_for_cpu(c: ml_collections.ConfigDict) -> None:
    """Turns any config into a CPU smoke run of about a minute (same code paths, tiny sizes).

    Applied after every delta of a config file (`configs.args.build`), so widened, deepened or
    longer experiments are shrunk too; what the shrink does not touch (optimizer, data, switches) stays.
    """
    m = c.model
    m.hidden_size = min(m.hidden_size, 64)
    if m.puzzle_emb_ndim > m.hidden_size:  # a tied value already follows hidden_size
        m.puzzle_emb_ndim = m.hidden_size
    m.num_heads = min(m.num_heads, 2)
    m.L_layers = min(m.L_layers, 2)
    if "H_layers" in m:
        m.H_layers = min(m.H_layers, 2)
    m.H_cycles = min(m.H_cycles, 2)
    m.L_cycles = min(m.L_cycles, 2)
    cur = c.curriculum  # a curriculum still grows towards the (shrunk) model depth
    cur.start_H_cycles = min(cur.start_H_cycles, m.H_cycles)
    cur.start_L_cycles = min(cur.start_L_cycles, m.L_cycles)
    m.forward_dtype = "float32"
    c.act.halt_max_steps = min(c.act.halt_max_steps, 4)
    if c.eval.halt_max_steps is not None:
        c.eval.halt_max_steps = min(c.eval.halt_max_steps, 8)
    c.train.global_batch_size = 32
    c.train.total_steps = 200
    c.train.eval_every_steps = 100
    c.train.steps_per_loop = 20
    c.train.log_every_steps = 20
    c.train.checkpoint_every_steps = 100
    c.optim.lr_warmup_steps = min(c.optim.lr_warmup_steps, 20)
    c.eval.global_batch_size = 64
    c.eval.subset_size = 256
    if c.eval.arc_subset_tasks != -1:  # every task stays every task (the paper ARC configs)
        c.eval.arc_subset_tasks = (
            2  # ARC: 2 whole tasks (~2k augmented rows) per periodic evaluation
        )
    c.eval.final_full = False
