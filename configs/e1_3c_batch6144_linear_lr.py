"""E1.3c batch scaling: global batch 6144 with the linear LR rule.

Question: does linear LR scaling keep the paper's accuracy at larger batches (fewer, larger steps on a pod)?

  python launch.py --config=configs/e1_3c_batch6144_linear_lr.py --workdir=gs://BUCKET/runs/e1_3c_batch6144_linear_lr --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-32 (per-chip batch 384, est. 19.5 GiB of 32 GiB HBM per chip)

Memory: the activations of the with-gradient cycle grow with the per-chip batch; at most 384 per chip
fits without remat, hence a v4-32 (or --config.model.remat=True on a v4-8). Slices above v4-8 are
multi-host: start the command once from the client (scripts/launch_pod.sh --name=TPU_NAME passes the
workers' addresses as --tpu). `python -m trm_tf.memory --config=configs/e1_3c_batch6144_linear_lr.py`
prints the per-chip estimate on every v4 slice.

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 'check stability'. Study ids: E1.3c, e4_5_larger_batch.

Linear LR rule anchored on the paper recipe: lr = 1e-4 * B / 768 (the E-scheme's 2x/4x/8x lr ladder over its own batch 256 -> 512/1024/2048), puzzle-embedding lr unchanged; warm-up keeps the paper's 2000 x 768 warm-up examples (the E-scheme's fixed 3000-10000 steps would exceed a whole run at large B).
"""

from configs import args, presets


def deltas(config, arg):
    config.experiment_id = "e1_3c_batch6144_linear_lr"
    presets.linear_lr_batch(config, 6144)


def get_config(arg=None):
    return args.build(arg, deltas)
