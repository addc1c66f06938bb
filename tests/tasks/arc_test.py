"""trm_tf.tasks.arc: the 30x30 canvas encoding, its crop, and one implementation for every user."""

import numpy as np
import pytest

from trm_tf.tasks import arc, grids


def test_constants():
    assert (arc.GRID_SIZE, arc.SEQ_LEN, arc.VOCAB_SIZE) == (30, 900, 12)
    assert (arc.PAD_ID, arc.EOS_ID, arc.COLOR_OFFSET, arc.NUM_COLORS) == (0, 1, 2, 10)


def test_encode_grid_places_colours_and_eos():
    g = np.array([[0, 9, 3], [4, 5, 6]], np.uint8)
    c = arc.encode_grid(g, (1, 2)).reshape(30, 30)
    np.testing.assert_array_equal(c[1:3, 2:5], g + 2)
    assert (c[3, 2:5] == 1).all() and (c[1:3, 5] == 1).all()
    assert c[3, 5] == 0  # diagonal corner stays pad
    assert (c != 0).sum() == 6 + 3 + 2
    # At the canvas edge there is no room for EOS: nothing wraps around.
    full = arc.encode_grid(np.full((30, 30), 7, np.uint8))
    assert (full == 9).all()
    edge = arc.encode_grid(np.ones((2, 2), np.uint8), (28, 28)).reshape(30, 30)
    assert (edge[28:, 28:] == 3).all() and (edge != 0).sum() == 4


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (30, 1), (12, 30), (30, 30)])
def test_crop_inverts_encode_at_the_origin(shape):
    g = np.random.default_rng(sum(shape)).integers(0, 10, shape).astype(np.uint8)
    got = arc.crop(arc.encode_grid(g))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, g)
    # Shifted away from (0, 0), the crop finds no colour at the origin.
    if shape[0] < 30:
        assert arc.crop(arc.encode_grid(g, (1, 0))).shape == (0, 0)


def test_crop_is_the_top_left_rectangle_of_colour_tokens():
    rng = np.random.default_rng(3)
    for _ in range(100):
        tokens = rng.integers(0, 14, 900)  # includes ids above the vocabulary: not colours
        tokens[: rng.integers(0, 900)] = rng.integers(2, 12)
        rows, cols = grids.top_left_rectangle(
            (tokens.reshape(30, 30) >= 2) & (tokens.reshape(30, 30) < 12)
        )
        got = arc.crop(tokens)
        assert got.shape == (rows, cols)
        np.testing.assert_array_equal(got, tokens.reshape(30, 30)[:rows, :cols] - 2)


def test_builder_evaluator_and_renderer_share_one_implementation():
    from tfds_builders.arc_agi import arc_lib
    from trm_tf.tools import render

    assert arc_lib.crop is arc.crop
    assert arc_lib.encode_grid is arc.encode_grid
    assert arc_lib.dihedral is grids.dihedral
    assert arc_lib.inverse_augment_grid is grids.inverse_augment
    assert arc_lib.DIHEDRAL_INVERSE is grids.DIHEDRAL_INVERSE
    assert (render.ARC_EOS, render.ARC_COLOR_OFFSET) == (arc.EOS_ID, arc.COLOR_OFFSET)
    assert arc.TEST_PUZZLES_FILE == "test_puzzles.json"
