"""Tests of the matmul FLOP count (trm_tf.models.flops) against the figures and formulas of
docs/model.md#flops, and against block counts worked out by hand for every recursion."""

from tests.testing.small_models import HRM, SMALL, TRM
from trm_tf.models.backbone import ReasoningBackbone
from trm_tf.models.flops import block_flops, flops_per_example


def test_paper_configs_match_the_documented_figures():
    att = TRM(11, 81, 1, mlp_t=False, pos_encodings="rope")
    mlp = TRM(11, 81, 1, mlp_t=True, pos_encodings="none")
    assert block_flops(att) == 680_396_800  # T_tot (8D^2 + 6DI) + 4 T_tot^2 D at T_tot = 97
    assert block_flops(mlp) == 457_703_424 + 152_567_808
    assert flops_per_example(att, train=False) == 28_577_760_256
    assert flops_per_example(mlp, train=False) == 25_632_486_400
    assert abs(flops_per_example(att, train=True) / 4.763e10 - 1) < 1e-3
    assert abs(flops_per_example(mlp, train=True) / 4.272e10 - 1) < 1e-3
    maze = TRM(6, 900, 1, L_cycles=4)
    assert abs(flops_per_example(maze, train=False) / 2.3885e11 - 1) < 1e-3
    # Per-call depth: (H, L) = (1, 1) is 2 block pairs, against (3, 6)'s 21.
    heads = 2 * 97 * 512 * 11 + 4 * 512
    assert flops_per_example(att, train=False, cycles=(1, 1)) == 2 * 2 * block_flops(att) + heads


def test_baselines_by_hand():
    d, v, t = 32, 7, 12  # SMALL: total_len = 9 + 3
    i_ch = 256  # ceil_256(round(4 * 32 * 2/3) = 85)
    blk = t * (8 * d * d + 6 * d * i_ch) + 4 * t * t * d
    head_f = 2 * t * d * v + 4 * d
    for arch in ("trm_singlez", "trm_hier6"):
        m = ReasoningBackbone.create(arch, **SMALL)
        assert block_flops(m) == blk
        assert flops_per_example(m, train=False) == 2 * 3 * 2 * blk + head_f  # H(n+1) calls
        assert flops_per_example(m, train=True) == 2 * 3 * 2 * blk + head_f + 2 * (
            3 * 2 * blk + head_f
        )
    # The transformer, 3 heads of 10: inner width a = 30; prefix ceil(ndim / D) = 1, so t = 9 + 1.
    tfm = ReasoningBackbone.create("transformer", **dict(SMALL, num_heads=3, puzzle_emb_len=0))
    a, t = 30, 10
    blk = t * (6 * d * a + 2 * a * d + 6 * d * i_ch) + 4 * t * t * a
    head_f = 2 * t * d * v + 4 * d
    assert flops_per_example(tfm, train=False) == 2 * blk + head_f
    assert flops_per_example(tfm, train=True) == 3 * (2 * blk + head_f)


def test_hrm_counts_both_networks():
    m = HRM(**dict(SMALL, H_layers=2, L_layers=3, H_cycles=2, L_cycles=2, puzzle_emb_len=0))
    # H (n L_layers + H_layers) block forwards: 2 * (2 * 3 + 2); heads on total_len = 10 positions.
    heads = 2 * m.total_len * 32 * 7 + 4 * 32
    assert flops_per_example(m, train=False) == 2 * (2 * 3 + 2) * block_flops(m) + heads
    # With gradient: the last z_L update (3 blocks) and the last z_H update (2 blocks) and the heads.
    assert flops_per_example(m, train=True) == flops_per_example(m, train=False) + 2 * (
        (3 + 2) * block_flops(m) + heads
    )
