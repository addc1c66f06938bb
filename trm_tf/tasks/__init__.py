"""Task maths shared by the dataset builders, the evaluators and the tools: token ids, encodings and
grid transforms of Sudoku, Maze and ARC, in pure NumPy.

One home for these numbers keeps the builder that writes a dataset, the evaluator that undoes its
augmentations and the renderer that draws its tokens from drifting apart. The package imports neither
TensorFlow nor TFDS (a test checks it), so the builders, their tests and small tools can use it without
paying for a TensorFlow import.

* `grids`: the reference's 8 dihedral transforms and their inverses, colour permutations, and the
  largest top-left rectangle used to crop a predicted grid;
* `sudoku`, `maze`, `arc`: each task's sequence length, vocabulary and token ids, and its encode/decode.
"""

from trm_tf.tasks import arc, grids, maze, sudoku

__all__ = ["arc", "grids", "maze", "sudoku"]
