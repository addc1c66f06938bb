"""contrib05 sparse attention: Maze-Hard 30x30 with 7x7 local windows plus the global puzzle prefix.

Question: does local attention keep Maze-Hard accuracy, the study's test before attempting mazes too large
for full attention?

  python launch.py --config=configs/contrib05_sparse_attention.py --workdir=gs://BUCKET/runs/contrib05_sparse_attention --tpu=$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-32 (per-chip batch 48, est. 25.1 GiB of 32 GiB HBM per chip)

Memory: attention over 916 positions (900 cells + 16 prefix) keeps 8 x 916 x 916 float32 attention
probabilities (27 MB) per example for each of the 10 block calls of the with-gradient cycle: 48 GiB per
chip at batch 192 on the 4 chips of a v4-8, hence a v4-32. The windows mask dense scores, so this costs
the memory of paper_maze_hard. Slices above v4-8 are multi-host: start the command once from the client
(scripts/launch_pod.sh --name=TPU_NAME passes the workers' addresses as --tpu).
`python -m trm_tf.memory --config=configs/contrib05_sparse_attention.py` prints the per-chip estimate on
every v4 slice.

Data: `maze_hard/hard`:

  tfds build tfds_builders/maze_hard --config=hard --data_dir=gs://BUCKET/tfds

Expected: at least 90% of full attention's accuracy on 30x30 (author's prior); compare with
`paper_maze_hard` (85.3% in the paper). Study id: contrib05_sparse_attention.

Everything is `paper_maze_hard` except `model.attention_window = 7`. Each maze cell attends to the 7x7
square around it and to the puzzle-prefix positions, and the prefix attends to every cell
(`trm_tf/models/primitives.local_window_mask`). Across the 3 x (4 + 1) x 2 = 30 attention layers per step, the
receptive field still covers the whole 30x30 grid. The scores are computed densely and masked, so this
tests the accuracy of locality, not a sparse kernel's speed.

Not covered: the study's second arm, a new 50x50 maze. The maze builder generates 30x30 only.
"""

from configs import args, presets


def deltas(config, arg):
    config.experiment_id = "contrib05_sparse_attention"
    presets.maze_hard(config)
    config.model.attention_window = 7


def get_config(arg=None):
    return args.build(arg, deltas)
