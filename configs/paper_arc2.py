"""Paper: TRM-Att on ARC-AGI-2 (`pretrain_att_arc2concept_4`).

Question: does the port reproduce the paper's ARC-AGI-2 pass@2?

  python launch.py --config=configs/paper_arc2.py --workdir=gs://BUCKET/runs/paper_arc2 --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-32 (per-chip batch 48, est. 27.6 GiB of 32 GiB HBM per chip)

Memory: full attention over 916 positions (900 cells + 16 prefix) keeps 8 x 916 x 916 float32 attention
probabilities (27 MB) per example for each of the 10 block calls of the with-gradient cycle: 48 GiB per
chip at batch 192 on the 4 chips of a v4-8, hence a v4-32. With --config.model.remat=True a v4-8 is still
estimated over 32 GiB (the 1.2M-row puzzle table is on every chip). Slices above v4-8 are multi-host:
start the command once from the client (scripts/launch_pod.sh --name=TPU_NAME passes the workers'
addresses as --tpu). `python -m trm_tf.memory --config=configs/paper_arc2.py` prints the per-chip
estimate on every v4 slice.

Data: `arc_agi/arc2_aug1000`:

  tfds build tfds_builders/arc_agi --config=arc2_aug1000 --manual_dir=DIR_WITH_KAGGLE_JSON --data_dir=gs://BUCKET/tfds

Expected: 7.8% pass@2 (paper).

Attention + RoPE, T=3, n=4, lr 1e-4, puzzle-embedding lr 1e-2, wd 0.1 (both), 100k epochs, eval
every 10k with accuracy and the ARC pass@K voting evaluator (config.eval.evaluators = ("accuracy",
"arc")), EMA on.
"""

from configs import args, presets


def deltas(config, arg):
    config.experiment_id = "paper_arc2"
    presets.arc_agi(config, 2)


def get_config(arg=None):
    return args.build(arg, deltas)
