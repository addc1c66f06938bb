"""TFDS conformance tests of the ARC-AGI builder on dummy data (3 real tasks per subset)."""

import tensorflow_datasets as tfds

from . import arc_agi_dataset_builder


class ArcAgi1Test(tfds.testing.DatasetBuilderTestCase):
    """ARC-1 without augmentation: 40 train rows (all pairs of training + concept, demonstrations of
    evaluation) and 4 test rows (the evaluation tasks' test pairs)."""

    DATASET_CLASS = arc_agi_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["arc1_aug0"]
    SPLITS = {"train": 40, "test": 4}
    SKIP_CHECKSUMS = True


class ArcAgi2AugTest(tfds.testing.DatasetBuilderTestCase):
    """ARC-2 with 10 augmentations: 11 copies of 39 train and 4 test rows."""

    DATASET_CLASS = arc_agi_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["arc2_aug10"]
    SPLITS = {"train": 11 * 39, "test": 11 * 4}
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
