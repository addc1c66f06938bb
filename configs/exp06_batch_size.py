"""Exp 6 (67-config scheme): global batch size with the square-root LR rule.

Question: where is the critical batch size (accuracy per example vs throughput on a pod)?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp06_a,seed=1`):

  exp06_a: batch 1536, lr = puzzle_emb_lr = 1e-4 * sqrt(1536 / 768). Expected ~87% (author's prior).
  exp06_b: batch 3072, lr = puzzle_emb_lr = 1e-4 * sqrt(3072 / 768). Expected ~87% (author's prior).
  exp06_c: batch 6144, lr = puzzle_emb_lr = 1e-4 * sqrt(6144 / 768). Expected ~87% (author's prior).
  exp06_d: batch 12288, lr = puzzle_emb_lr = 1e-4 * sqrt(12288 / 768). Expected ~87% (author's prior).
  exp06_e: batch 24576, lr = puzzle_emb_lr = 1e-4 * sqrt(24576 / 768). Expected ~87% (author's prior, stale README).
  exp06_f: batch 49152, lr = puzzle_emb_lr = 1e-4 * sqrt(49152 / 768). Expected ~86% (author's prior, stale README).

Launch:

  python launch.py --config=configs/exp06_batch_size.py:exp06_a --workdir=gs://BUCKET/runs/exp06_a --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp06_batch_size.py:exp06_b --workdir=gs://BUCKET/runs/exp06_b --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-16 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp06_batch_size.py:exp06_c --workdir=gs://BUCKET/runs/exp06_c --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-32 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp06_batch_size.py:exp06_d --workdir=gs://BUCKET/runs/exp06_d --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-64 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp06_batch_size.py:exp06_e --workdir=gs://BUCKET/runs/exp06_e --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-128 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp06_batch_size.py:exp06_f --workdir=gs://BUCKET/runs/exp06_f --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-256 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)

Memory: the activations of the with-gradient cycle grow with the per-chip batch; each arm fits at 384 per
chip (est. 19.5 GiB), so the larger batches need the larger slices named above, or
--config.model.remat=True on a quarter of the chips (1536 per chip, est. 18.7 GiB). Slices above v4-8 are
multi-host: start the command once from the client (scripts/launch_pod.sh --name=TPU_NAME passes the
workers' addresses as --tpu). `python -m trm_tf.memory --config=configs/exp06_batch_size.py` prints the
per-chip estimate on every v4 slice.

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Rule (stated, anchored on the paper recipe 768 / 1e-4): lr = puzzle_emb_lr = 1e-4 * sqrt(B / 768),
warm-up = ceil(2000 * 768 / B) steps (the paper's warm-up examples). The study anchored 1e-4 at its
6144 'baseline' and kept 2000 warm-up steps (more than a whole run at 49152), and its OOM edit made
exp06_e and exp06_f copies of exp06_d; here every arm keeps its own batch (the reference's one
supervision step per update keeps memory flat in N_sup; see Memory above for the slices).
The paper batch 768 itself is the baseline.
"""

from configs import args, presets

VARIANTS = {
    "exp06_a": 1536,
    "exp06_b": 3072,
    "exp06_c": 6144,
    "exp06_d": 12288,
    "exp06_e": 24576,
    "exp06_f": 49152,
}


def deltas(config, arg):
    config.experiment_id = arg.variant
    presets.sqrt_lr_batch(config, VARIANTS[arg.variant])


def get_config(arg=None):
    return args.build(arg, deltas, VARIANTS)
