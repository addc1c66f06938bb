"""E2.3 attention: the paper's Sudoku TRM-Att arm (self-attention + RoPE instead of the MLP-T mixer).

Question: how much does the MLP over the sequence gain over attention on Sudoku (paper: 87.4% vs 74.7%)?

  python launch.py --config=configs/e2_3_attention.py --workdir=gs://BUCKET/runs/e2_3 --tpu=local \\
      --config.data.data_dir=gs://BUCKET/tfds

Same data and recipe as e1_1_baseline; only the token mixer and position encoding change.
"""

from configs import base


def get_config(arg=None):
    config = base.get_config(arg)
    config.experiment_id = "e2_3_attention"
    config.model.mlp_t = False
    config.model.pos_encodings = "rope"
    return config
