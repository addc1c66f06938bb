"""Paper: TRM-Att on ARC-AGI-2 (`pretrain_att_arc2concept_4`).

Question: does the port reproduce the paper's ARC-AGI-2 pass@2?

  python launch.py --config=configs/paper_arc2.py --workdir=gs://BUCKET/runs/paper_arc2 --tpu=local --config.data.data_dir=gs://BUCKET/tfds

Data: `arc_agi/arc2_aug1000`:

  tfds build tfds_builders/arc_agi --config=arc2_aug1000 --manual_dir=DIR_WITH_KAGGLE_JSON --data_dir=gs://BUCKET/tfds

Expected: 7.8% pass@2 (paper).

Attention + RoPE, T=3, n=4, lr 1e-4, puzzle-embedding lr 1e-2, wd 0.1 (both), 100k epochs, eval
every 10k with the ARC pass@K voting evaluator (config.eval.evaluator = "arc"), EMA on.
"""

from configs import presets


def get_config(arg=None):
    config, parsed, _ = presets.start(arg)
    config.experiment_id = "paper_arc2"
    presets.arc_agi(config, 2)
    return presets.finish(config, parsed)
