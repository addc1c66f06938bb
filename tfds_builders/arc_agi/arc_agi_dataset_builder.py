"""ARC-AGI-1 and ARC-AGI-2 as TFDS datasets, following the TRM reference ARC builder.

Configs `arc{1,2}_aug{A}` for A in {0, 10, 100, 300, 1000}:

* ARC-1: subsets training + evaluation + concept, tested on evaluation;
* ARC-2: subsets training2 + evaluation2 + concept, tested on evaluation2.

The test subset's demonstration pairs go to `train`, its test pairs to `test`; every other subset sends
all its pairs to `train`. Each augmented copy of a task is a puzzle with its own identifier (shared by
the two splits), and the copies of one task form a group. Grids are 30x30 canvases of 900 tokens
(0 pad, 1 EOS, colours 2..11); the train split also gets translation augmentation.

Besides the TFRecords the build writes, next to `dataset_info.json`:

* `metadata.json` (TFDS `info.metadata`): seq_len, vocab_size, ..., num_puzzle_identifiers;
* `test_puzzles.json`: the un-augmented test tasks with their solutions (the reference's layout),
  the ground truth of `trm_tf.evaluators.arc.ARCEvaluator` (`load_ground_truth(builder.data_dir)`).

Build: `tfds build tfds_builders/arc_agi --config=arc1_aug1000 --manual_dir=/path/to/arc-agi
--data_dir=gs://BUCKET/tfds` (the manual dir holds `arc-agi_<subset>_{challenges,solutions}.json`).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import builder_utils
from trm_tf.tasks import arc as arc_task
from trm_tf.tasks.arc import TEST_PUZZLES_FILE

from . import arc_lib, arc_loading

_ARC1 = ("training", "evaluation", "concept")
_ARC2 = ("training2", "evaluation2", "concept")
_NUM_AUGS = (0, 10, 100, 300, 1000)


@dataclasses.dataclass
class ArcConfig(tfds.core.BuilderConfig):
    """One ARC dataset variant.

    Attributes:
      subsets: subset files to read, in order.
      test_subset: subset whose test pairs form the test split.
      num_aug: augmented copies per task (besides the original); up to 5 * num_aug trials.
      seed: seed of every random choice (the reference uses 42).
      translate: translation augmentation of the train split (the reference always does it).
      num_shards: shards per split (clamped to the split size), so 64 hosts each read their own files.
    """

    subsets: tuple[str, ...] = _ARC1
    test_subset: str = "evaluation"
    num_aug: int = 0
    seed: int = 42
    translate: bool = True
    num_shards: int = 64


def _make_configs() -> list[ArcConfig]:
    configs = []
    for version, subsets, test_subset in (
        ("arc1", _ARC1, "evaluation"),
        ("arc2", _ARC2, "evaluation2"),
    ):
        for a in _NUM_AUGS:
            configs.append(
                ArcConfig(
                    name=f"{version}_aug{a}",
                    description=(
                        f"ARC-AGI-{version[-1]}: {' + '.join(subsets)}, tested on {test_subset}, "
                        f"{a} augmentations per task."
                    ),
                    subsets=subsets,
                    test_subset=test_subset,
                    num_aug=a,
                )
            )
    return configs


# Puzzle identifiers of the full builds of the paper's configs (1 + augmented puzzles, measured), and the
# tasks of each version's subsets in the Kaggle files, for the upper bound 1 + tasks * (1 + num_aug) of the
# other configs (tasks with few colours yield fewer distinct augmentations).
_MEASURED_IDENTIFIERS = {"arc1_aug1000": 876_406, "arc2_aug1000": 1_191_724}
_SOURCE_TASKS = {"arc1": 960, "arc2": 1280}


def shapes(config: str) -> tuple[int, int, int]:
    """(seq_len, vocab_size, num_puzzle_identifiers) a build of `config` writes to its metadata, known
    without building it (`trm_tf.data.datasets.dataset_shapes`): measured for the paper's configs, the
    upper bound for the others.

    Raises:
      KeyError: not an `arc{1,2}_aug{A}` config.
    """
    version, _, aug = config.partition("_aug")
    if config in _MEASURED_IDENTIFIERS:
        ids = _MEASURED_IDENTIFIERS[config]
    elif version in _SOURCE_TASKS and aug.isdigit():
        ids = 1 + _SOURCE_TASKS[version] * (1 + int(aug))
    else:
        raise KeyError(f"no shapes known for arc_agi config {config!r}")
    return arc_task.SEQ_LEN, arc_task.VOCAB_SIZE, ids


class Builder(builder_utils.ShardPolicy, tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for ARC-AGI (Kaggle combined JSON files from the manual directory)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (TRM reference encoding and augmentation)."}
    BUILDER_CONFIGS = _make_configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put the Kaggle "combined" ARC files `arc-agi_<subset>_challenges.json` and
    `arc-agi_<subset>_solutions.json` for subsets training, evaluation, concept (ARC-1) or training2,
    evaluation2, concept (ARC-2) in one folder and pass it with `--manual_dir` (`tfds build`) or
    `DownloadConfig(manual_dir=...)`.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return builder_utils.dataset_info(
            self,
            arc_task.SEQ_LEN,
            "https://arcprize.org/",
            task_name=tfds.features.Text(),
            test_index=tfds.features.Scalar(dtype=np.int32),
            transform_id=tfds.features.Scalar(dtype=np.int32),
            color_map=tfds.features.Tensor(shape=(arc_task.NUM_COLORS,), dtype=np.uint8),
            translation=tfds.features.Tensor(shape=(2,), dtype=np.int32),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        tasks = arc_loading.load_tasks(dl_manager.manual_dir, cfg.subsets)
        if not any(t.subset == cfg.test_subset for t in tasks):
            raise arc_loading.ArcDataError(f"test subset {cfg.test_subset!r} has no tasks")
        plans, num_ids = arc_lib.plan_dataset(tasks, cfg.test_subset, cfg.num_aug, cfg.seed)
        stats = {s: arc_lib.split_statistics(plans, s) for s in ("train", "test")}
        incomplete = sum(len(p.trans_ids) < cfg.num_aug + 1 for p in plans)
        self.info.metadata.update(
            {
                **builder_utils.core_metadata(
                    arc_task.SEQ_LEN, arc_task.VOCAB_SIZE, arc_task.PAD_ID, int(num_ids)
                ),
                "total_groups": {s: int(v["groups"]) for s, v in stats.items()},
                "total_puzzles": {s: int(v["puzzles"]) for s, v in stats.items()},
                "total_examples": {s: int(v["examples"]) for s, v in stats.items()},
                "mean_puzzle_examples": {
                    s: float(v["examples"] / max(v["puzzles"], 1)) for s, v in stats.items()
                },
                "subsets": list(cfg.subsets),
                "test_subset": cfg.test_subset,
                "num_aug": cfg.num_aug,
                "tasks_with_fewer_augmentations": int(incomplete),
                "seed": cfg.seed,
                "translate_train": cfg.translate,
                "test_puzzles_file": TEST_PUZZLES_FILE,
                "description": (
                    "ARC-AGI Kaggle combined files; TRM reference encoding (30x30, pad 0, EOS 1, "
                    "colours 2..11), dihedral + colour-permutation augmentation, train translation; "
                    f"seed {cfg.seed}."
                ),
            }
        )
        # self.data_path is TFDS's temporary build dir here, renamed only when the build succeeds.
        (epath.Path(self.data_path) / TEST_PUZZLES_FILE).write_text(
            json.dumps(arc_lib.test_puzzles_json(plans))
        )
        return {s: self._generate_examples(plans, s) for s in ("train", "test")}

    def _generate_examples(self, plans, split: str):
        cfg = self.builder_config
        puzzle_index = 0
        group = 0
        for plan in plans:
            rec = arc_lib.encode_task_split(
                plan, split, cfg.seed, cfg.translate and split == "train"
            )
            if rec is None:
                continue
            name = plan.task.name
            for k in range(len(plan.trans_ids)):
                tid = int(plan.trans_ids[k])
                for e in range(rec["inputs"].shape[1]):
                    yield (
                        f"{puzzle_index:09d}_{e:03d}",
                        {
                            "inputs": rec["inputs"][k, e],
                            "labels": rec["labels"][k, e],
                            "puzzle_identifier": int(plan.identifiers[k]),
                            "puzzle_index": puzzle_index,
                            "group": group,
                            "task_name": name,
                            "test_index": int(rec["test_index"][e]),
                            "transform_id": tid,
                            "color_map": plan.color_maps[k],
                            "translation": rec["translation"][k, e],
                        },
                    )
                puzzle_index += 1
            group += 1
