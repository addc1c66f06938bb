"""Paper: TRM-Att on ARC-AGI-1 (`pretrain_att_arc1concept_4`).

Question: does the port reproduce the paper's ARC-AGI-1 pass@2?

  python launch.py --config=configs/paper_arc1.py --workdir=gs://BUCKET/runs/paper_arc1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds

Data: `arc_agi/arc1_aug1000`:

  tfds build tfds_builders/arc_agi --config=arc1_aug1000 --manual_dir=DIR_WITH_KAGGLE_JSON --data_dir=gs://BUCKET/tfds

Expected: 44.6% pass@2 (paper). Study ids: phase3_arc1.

Attention + RoPE, T=3, n=4, lr 1e-4, puzzle-embedding lr 1e-2, wd 0.1 (both), 100k epochs, eval
every 10k with the ARC pass@K voting evaluator (config.eval.evaluator = "arc"), EMA on.
"""

from configs import presets


def get_config(arg=None):
    config, parsed, _ = presets.start(arg)
    config.experiment_id = "paper_arc1"
    presets.arc_agi(config, 1)
    return presets.finish(config, parsed)
