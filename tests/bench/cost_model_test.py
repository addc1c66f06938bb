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
