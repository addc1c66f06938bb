"""TFDS conformance tests of the Maze-Hard builder (CSV dummy data and the generator)."""

import tensorflow_datasets as tfds

from . import maze_hard_dataset_builder


class MazeHardTest(tfds.testing.DatasetBuilderTestCase):
    """`hard` from the dummy manual dir: 3 train and 1 test maze."""

    DATASET_CLASS = maze_hard_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["hard"]
    SPLITS = {"train": 3, "test": 1}
    SKIP_CHECKSUMS = True


class MazeHardAug8Test(tfds.testing.DatasetBuilderTestCase):
    """`hard_aug8`: 8 dihedral copies of each train maze, test untouched."""

    DATASET_CLASS = maze_hard_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["hard_aug8"]
    SPLITS = {"train": 24, "test": 1}
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
