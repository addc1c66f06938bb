"""trm_tf.tasks.maze: charset encoding and the flat-row dihedral transform."""

import numpy as np

from trm_tf.tasks import grids, maze


def test_ids_follow_charset_order():
    assert maze.CHARSET == "# SGo" and maze.VOCAB_SIZE == 6 and maze.SEQ_LEN == 900
    ids = (maze.WALL, maze.OPEN, maze.START, maze.GOAL, maze.PATH)
    assert ids == (1, 2, 3, 4, 5) and maze.PAD_ID == 0


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list(maze.CHARSET), 900))
    ids = maze.encode(text)
    assert ids.dtype == np.uint8 and ids.shape == (900,)
    np.testing.assert_array_equal(ids, [maze.CHARSET.index(c) + 1 for c in text])
    assert maze.decode(ids) == text
    assert maze.encode("#x S").tolist() == [1, 0, 2, 3]  # outside the charset -> 0


def test_dihedral_rows_is_the_shared_transform_on_30x30():
    rows = np.random.default_rng(1).integers(1, 6, (2, 900)).astype(np.uint8)
    for t in range(8):
        out = maze.dihedral_rows(rows, t)
        for i in range(2):
            want = grids.dihedral(rows[i].reshape(30, 30), t).reshape(-1)
            np.testing.assert_array_equal(out[i], want)
