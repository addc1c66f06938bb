"""Paper: TRM-Att on Maze-Hard 30x30 (`pretrain_att_maze30x30`).

Question: does the port reproduce the paper's Maze-Hard result (the study's Phase 3 cross-domain check)?

  python launch.py --config=configs/paper_maze_hard.py --workdir=gs://BUCKET/runs/paper_maze_hard --tpu=local --config.data.data_dir=gs://BUCKET/tfds

Data: `maze_hard/hard`:

  tfds build tfds_builders/maze_hard --config=hard --data_dir=gs://BUCKET/tfds

Expected: 85.3% (paper, TRM-Att). Study ids: phase3_maze.

Attention + RoPE, T=3, n=4, lr 1e-4 (both), wd 1.0 (both), 50k epochs, eval every 5k. The reference
ran on 4 GPUs with global batch 768, kept here.
"""

from configs import presets


def get_config(arg=None):
    config, parsed, _ = presets.start(arg)
    config.experiment_id = "paper_maze_hard"
    presets.maze_hard(config)
    return presets.finish(config, parsed)
