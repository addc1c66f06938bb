"""The HLO cost counter on hand-checkable programs, and the cost model's choice of target slice."""

import os
import sys

import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import cost_model, hlo_cost  # noqa: E402


def _hlo(fn, *specs) -> str:
    return tf.function(fn, jit_compile=True).experimental_get_compiler_ir(*specs)(stage="hlo")


def test_single_matmul_flops_padding_and_bytes():
    # [4, 200, 97] x [97, 128]: the contraction 97 pads to the MXU's 128; 200 rows are a multiple of 8.
    specs = (tf.TensorSpec([4, 200, 97], tf.float32), tf.TensorSpec([97, 128], tf.float32))
    cost = hlo_cost.hlo_cost(_hlo(lambda x, w: tf.einsum("bmk,kn->bmn", x, w), *specs))
    assert cost.dots == 1
    assert cost.flops == 2 * 4 * 200 * 97 * 128
    assert cost.flops_padded == 2 * 4 * 200 * 128 * 128
    assert cost.loops == 0
    # Parameters read once, the dot reads both and writes its result, the output written once.
    x, w, out = 4 * 200 * 97 * 4, 97 * 128 * 4, 4 * 200 * 128 * 4
    assert cost.bytes == 2 * x + 2 * w + 2 * out
    # HBM tiles: x's minor 97 -> 128; w's second-minor 97 -> 104 (f32 sublane tile 8).
    assert cost.bytes_padded == 2 * (4 * 200 * 128 * 4) + 2 * (104 * 128 * 4) + 2 * out


def test_batched_dot_takes_the_better_mxu_orientation():
    lhs = hlo_cost.Tensor("bf16", (8, 97, 64), (2, 1, 0))
    rhs = hlo_cost.Tensor("bf16", (8, 64, 300), (2, 1, 0))
    attrs = ", lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, rhs_contracting_dims={1}"
    flops, padded = hlo_cost.dot_flops(lhs, rhs, attrs)
    assert flops == 2 * 8 * 97 * 300 * 64
    # K 64 -> 128; the smaller of M 97 -> 104 with N 300 -> 384 (39,936) and M 97 -> 128 with
    # N 300 -> 304 (38,912) is taken.
    assert padded == 2 * 8 * 128 * min(104 * 384, 128 * 304)


def test_padded_bytes_tile_the_two_minor_dims_by_dtype():
    assert hlo_cost.Tensor("bf16", (97, 97), (1, 0)).padded_bytes == 112 * 128 * 2
    assert hlo_cost.Tensor("f32", (97, 97), (1, 0)).padded_bytes == 104 * 128 * 4
    assert hlo_cost.Tensor("pred", (3, 5, 7), (2, 1, 0)).padded_bytes == 3 * 32 * 128
    # Column-major layout: dim 0 is minor.
    assert hlo_cost.Tensor("f32", (97, 200), (0, 1)).padded_bytes == 128 * 200 * 4
    assert hlo_cost.Tensor("f32", (5,), (0,)).padded_bytes == 128 * 4


def test_reduce_reads_the_bf16_source_through_a_convert():
    text = """HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(f32[] %a, f32[] %b)
}

ENTRY %main (p: bf16[16,256]) -> f32[16] {
  %p = bf16[16,256]{1,0} parameter(0)
  %c = f32[16,256]{1,0} convert(bf16[16,256]{1,0} %p)
  %m = f32[16,256]{1,0} multiply(f32[16,256]{1,0} %c, f32[16,256]{1,0} %c)
  %z = f32[] constant(0)
  %r1 = f32[16]{0} reduce(f32[16,256]{1,0} %c, f32[] %z), dimensions={1}, to_apply=%add
  ROOT %r2 = f32[16]{0} reduce(f32[16,256]{1,0} %m, f32[] %z), dimensions={1}, to_apply=%add
}
"""
    cost = hlo_cost.hlo_cost(text)
    p, sq, vec = 16 * 256 * 2, 16 * 256 * 4, 16 * 4
    # parameter once; r1 reads p as bf16 (through the convert), r2 reads the f32 square (not fused
    # away: an elementwise result feeding a heavy op is read at its own size); scalars; outputs.
    assert cost.bytes == p + (p + 4 + vec) + (sq + 4 + vec) + vec
    assert cost.flops == 0 and cost.dots == 0


def test_roofline_and_allreduce():
    assert hlo_cost.allreduce_seconds(1e9, 1) == 0.0
    assert hlo_cost.allreduce_seconds(1e9, 2, bandwidth=1e9) == pytest.approx(1.0)
    cost = hlo_cost.HloCost(flops=100, flops_padded=200, bytes=10, bytes_padded=10)
    r = hlo_cost.roofline(cost, comm_seconds=0.5, peak=100.0, hbm_bw=10.0)
    assert r["bound"] == "compute" and r["step_s"] == pytest.approx(2.5)
    assert r["mfu"] == pytest.approx(100 / (2.5 * 100))
    r = hlo_cost.roofline(cost, peak=1000.0, hbm_bw=1.0)
    assert r["bound"] == "memory" and r["step_s"] == pytest.approx(10.0)


def test_target_slice_is_the_smallest_fitting_one():
    from configs import catalogue

    def target(study_id):
        run = catalogue.lookup(study_id)
        return cost_model.target_slice(cost_model.load_config(run.config, run.variant), run.dataset)

    assert target("E1.1") == cost_model.Target("v4-8", 4, 192)
    assert target("paper_arc1") == cost_model.Target("v4-32", 16, 48)


# --- Seeds a grant affords (--questions), on a fabricated cost table.

BASE = "e1_1_baseline"  # the baseline's run id, so that the tables mark it as shared


def _costs():
    return {
        BASE: cost_model.ArmCost(BASE, 4, 2.0),  # 8 chip-h
        "a": cost_model.ArmCost("a", 4, 1.0),  # 4 chip-h
        "b": cost_model.ArmCost("b", 16, 0.5),  # 8 chip-h on the whole grant slice
        "x": cost_model.ArmCost("x", 8, 1.0),  # 8 chip-h
        "y": cost_model.ArmCost("y", 4, 1.0, modelled=False),  # 4 chip-h, formula only
    }


def test_seed_plan_counts_chip_hours_and_shares_the_baseline():
    questions = {"Q1": [BASE, "a", "b"], "Q2": [BASE, "x"]}
    plan = cost_model.seed_plan(
        questions, _costs(), chips=16, hours=10.0, seeds=3, extras=("y", "a")
    )
    assert plan["budget_chip_hours"] == 160
    q1, q2 = plan["questions"]["Q1"], plan["questions"]["Q2"]
    # Q1: 8 + 4 + 8 chip-h; packed on 16 chips that is 1.25 slice-hours; its longest run takes 2 h.
    assert (q1["chip_hours"], q1["slice_hours"], q1["longest_hours"]) == (20, 1.25, 2.0)
    assert q1["seeds_alone"] == 8  # 160 / 20 exactly: not rounded down to 7
    assert (q2["chip_hours"], q2["seeds_alone"]) == (16, 10)
    # Both questions: the baseline counted once, 28 chip-h per seed, 5 seeds (140 of 160 chip-h).
    assert plan["all"]["runs"] == [BASE, "a", "b", "x"]
    assert (plan["all"]["chip_hours"], plan["all"]["seeds_equal"]) == (28, 5)
    # 3 seeds of both (84) and of the extra run y (12; `a` is already an arm): 64 left = 2 more seeds.
    p = plan["plan"]
    assert p["extras"] == ["y"]
    assert (p["questions_chip_hours"], p["extras_chip_hours"], p["left_chip_hours"]) == (84, 12, 64)
    assert (p["more_seeds"], p["fits"]) == (2, True)
    over = cost_model.seed_plan(questions, _costs(), chips=16, hours=5.0, seeds=3)
    assert over["plan"]["left_chip_hours"] == 80 - 84 and over["plan"]["more_seeds"] == 0
    assert not over["plan"]["fits"] and over["all"]["seeds_equal"] == 2


def test_seed_plan_refuses_runs_the_grant_cannot_hold():
    with pytest.raises(ValueError, match="b needs 16 chips, more than the grant's 8"):
        cost_model.seed_plan({"Q1": ["a", "b"]}, _costs(), chips=8, hours=100.0)
    with pytest.raises(ValueError, match="e1_1_baseline takes 2 h, longer than the grant's 1 h"):
        cost_model.seed_plan({"Q1": [BASE]}, _costs(), chips=16, hours=1.0)


def test_grant_chips():
    assert cost_model.grant_chips("v4-32") == 16
    assert cost_model.grant_chips("v4-64") == 32
    with pytest.raises(ValueError, match="--slice=v4-30: expected one of v4-8, v4-16"):
        cost_model.grant_chips("v4-30")


def test_markdown_seeds_tables():
    costs = _costs()
    plan = cost_model.seed_plan(
        {"Q1": [BASE, "a"], "Q2": [BASE, "x"]}, costs, chips=16, hours=10.0, seeds=2, extras=("y",)
    )
    names = {
        BASE: {"Q1": ["E1.1", "E2.2d"], "Q2": ["E2.1a"]},
        "a": {"Q1": ["E1.3a"]},
        "x": {"Q2": ["E2.1b"]},
        "y": {"extra": ["E4.1"]},
    }
    lines = cost_model.markdown_seeds(plan, costs, names, "v4-32", 10 / 24).splitlines()
    assert lines[0].startswith("Grant: v4-32 (16 chips) for 0.416667 days = 160 chip-h.")
    q1 = next(x for x in lines if x.startswith("| Q1: recursion"))
    # 12 chip-h = 0.75 v4-32 h per seed, 13 seeds alone; the baseline named by Q1's own ids.
    assert q1.endswith(
        "| E1.1=E2.2d, E1.3a (2) | E1.1=E2.2d, shared with Q2 | 12.0 | 0.75 | 2.00 | (a) 13 alone |"
    )
    q2 = next(x for x in lines if x.startswith("| Q2: is EMA"))
    assert "| E2.1a, E2.1b (2) | E2.1a, shared with Q1 | 16.0 | 1.00 | 2.00 | (a) 10 alone |" in q2
    assert (
        "| every distinct run once (3) | counted once | 20.0 | 1.25 | 2.00 | **(b) 8 each** |"
        in (next(x for x in lines if x.startswith("| **Q1, Q2 together**")))
    )
    # 2 seeds: 40 + 8 chip-h, 112 left = 5 more seeds (100 chip-h).
    assert "| Q1, Q2: every distinct run | 2 | 40 | 2.5 | 25.0% |" in lines
    assert "| extra runs: y | 2 | 8 | 0.5 | 5.0% |" in lines
    assert "| **left** |  | 112 | 7.0 | 70.0% |" in lines
    assert "| left spent on more seeds of Q1, Q2 | +5 | 100 | 6.2 | 62.5% |" in lines
    assert "| y\\* | E4.1 | extra | v4-8 | 1.00 | 4.0 | 0.25 | 8.0 | 5.00% |" in lines
    assert (
        f"| {BASE} | E1.1=E2.2d=E2.1a | Q1, Q2 | v4-8 | 2.00 | 8.0 | 0.50 | 16.0 | 10.00% |"
        in lines
    )
    assert lines[-1].startswith("\\* step not lowered")


def test_questions_resolve_to_their_runs_in_the_catalogue():
    from configs import catalogue

    runs = {q.key: [r.run_id for r in q.runs()] for q in catalogue.QUESTIONS}
    assert list(runs) == ["Q1", "Q2", "Q3", "Q4"]
    assert runs["Q2"] == ["e1_1_baseline", "e2_1_ema_off"]
    assert runs["Q3"] == ["e1_1_baseline", "e2_3_attention"]
    # E1.1 and E2.2d are one run: 9 ids, 8 runs.
    assert runs["Q1"] == [
        "e1_1_baseline",
        "e1_3a_batch1536_linear_lr",
        "e1_3b_batch3072_linear_lr",
        "e1_3c_batch6144_linear_lr",
        "e2_2a_t2_n2",
        "e2_2b_t2_n6",
        "e2_2c_t3_n4",
        "e2_2e_t4_n6",
    ]
    assert runs["Q4"] == [
        "e2_4a_nsup4",
        "e2_4b_nsup8",
        "e1_1_baseline",
        "e2_4d_nsup32",
        "e4_2a_halt_penalty_0p01",
        "e4_2b_halt_penalty_0p1",
        "e4_2c_halt_penalty_1",
    ]
    for q in catalogue.QUESTIONS:
        for i in q.ids:
            assert i in catalogue.lookup(i).ids, (q.key, i)  # a study id, not a run id
