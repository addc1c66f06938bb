r"""Builds a repository dataset without the `tfds` CLI (no apache-beam needed).

python -m trm_tf.data.prepare --dataset=sudoku_extreme/generated_easy --data_dir=~/tensorflow_datasets
python -m trm_tf.data.prepare --dataset=arc_agi/arc1_aug1000 --manual_dir=DIR --data_dir=gs://B/tfds
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging  # noqa: E402

from trm_tf.data import datasets  # noqa: E402

_DATASET = flags.DEFINE_string(
    "dataset", None, "dataset/config, e.g. sudoku_extreme/sub1000_aug1000."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "~/tensorflow_datasets", "TFDS data dir (local or gs://)."
)
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", "", "Folder with the source files (CSV / ARC JSON)."
)
flags.mark_flag_as_required("dataset")


def main(argv):
    del argv
    spec = datasets.build_dataset(_DATASET.value, _DATA_DIR.value, _MANUAL_DIR.value)
    logging.info(
        "Built %s in %s: %d train / %d test examples, seq_len %d, vocab %d, %d puzzle identifiers",
        spec.name,
        spec.data_dir,
        spec.num_train_examples,
        spec.num_test_examples,
        spec.seq_len,
        spec.vocab_size,
        spec.num_puzzle_identifiers,
    )


if __name__ == "__main__":
    app.run(main)
