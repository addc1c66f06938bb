"""Paper: TRM-Att on Maze-Hard 30x30 (`pretrain_att_maze30x30`).

Question: does the port reproduce the paper's Maze-Hard result (the study's Phase 3 cross-domain check)?

  python launch.py --config=configs/paper_maze_hard.py --workdir=gs://BUCKET/runs/paper_maze_hard --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-32 (per-chip batch 48, est. 25.1 GiB of 32 GiB HBM per chip)

Memory: full attention over 916 positions (900 cells + 16 prefix) keeps 8 x 916 x 916 float32 attention
probabilities (27 MB) per example for each of the 10 block calls of the with-gradient cycle: 48 GiB per
chip at batch 192 on the 4 chips of a v4-8, hence a v4-32. With --config.model.remat=True a v4-8 is
estimated at 30.0 GiB, too tight to rely on. Slices above v4-8 are multi-host: start the command once
from the client (scripts/launch_pod.sh --name=TPU_NAME passes the workers' addresses as --tpu).
`python -m trm_tf.memory --config=configs/paper_maze_hard.py` prints the per-chip estimate on every v4
slice.

Data: `maze_hard/hard`:

  tfds build tfds_builders/maze_hard --config=hard --data_dir=gs://BUCKET/tfds

Expected: 85.3% (paper, TRM-Att). Study ids: phase3_maze.

Attention + RoPE, T=3, n=4, lr 1e-4 (both), wd 1.0 (both), 50k epochs, eval every 5k. The reference
ran on 4 GPUs with global batch 768, kept here.
"""

from configs import args, presets


def deltas(config, arg):
    config.experiment_id = "paper_maze_hard"
    presets.maze_hard(config)


def get_config(arg=None):
    return args.build(arg, deltas)
