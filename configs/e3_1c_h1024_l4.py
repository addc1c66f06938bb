"""E3.1c: a large TRM-MLP (hidden 1024, 4 layers, 16 heads, 35.2M params, not the claimed 28M).

Question: does a ~35M-parameter network still gain, or overfit 1000 puzzles?

  python launch.py --config=configs/e3_1c_h1024_l4.py --workdir=gs://BUCKET/runs/e3_1c_h1024_l4 --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-16 (per-chip batch 96, est. 19.0 GiB of 32 GiB HBM per chip)

Memory: at width 1024 with 4 layers, batch 192 per chip is estimated at 36.8 GiB on a v4-8, hence a v4-16
(or --config.model.remat=True on a v4-8, est. 8.2 GiB). Slices above v4-8 are multi-host: start the
command once from the client (scripts/launch_pod.sh --name=TPU_NAME passes the workers' addresses as
--tpu). `python -m trm_tf.memory --config=configs/e3_1c_h1024_l4.py` prints the per-chip estimate on
every v4 slice.

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 35.2M params; watch overfitting (author's prior). Study ids: E3.1c.

Held at the paper's batch 768 and lr 1e-4 (see e3_1b_h768_l3).
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e3_1c_h1024_l4"
    config.model.hidden_size = 1024
    config.model.L_layers = 4
    config.model.num_heads = 16


def get_config(arg=None):
    return args.build(arg, deltas)
