"""E2.3b: the paper's Sudoku TRM-Att arm (self-attention + RoPE instead of the MLP-T mixer).

Question: how much does the MLP over the sequence gain over attention on 9x9 Sudoku (paper: 87.4% vs 74.7%)?

  python launch.py --config=configs/e2_3_attention.py --workdir=gs://BUCKET/runs/e2_3_attention --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 7.2 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 74.7% (paper, TRM-Att). Study ids: E2.3b.

The study's 67-config scheme never tested attention (num_heads had no effect in all 67 configs).
"""

from configs import args, presets


def deltas(config, arg):
    config.experiment_id = "e2_3_attention"
    presets.sudoku_attention(config)


def get_config(arg=None):
    return args.build(arg, deltas)
