"""E1.1 baseline: the paper's Sudoku-Extreme TRM-MLP recipe (87.4% in the paper), the study's reference arm.

Question: does our TF/TPU port reproduce the reference's Sudoku-Extreme MLP-T result?

  python launch.py --config=configs/e1_1_baseline.py --workdir=gs://BUCKET/runs/e1_1_baseline --tpu=local \\
      --config.data.data_dir=gs://BUCKET/tfds

Data: sudoku_extreme/sub1000_aug1000 (`tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000
--manual_dir=DIR_WITH_CSVS --data_dir=gs://BUCKET/tfds`).
"""

from configs import base


def get_config(arg=None):
    config = base.get_config(arg)
    config.experiment_id = "e1_1_baseline"
    return config
