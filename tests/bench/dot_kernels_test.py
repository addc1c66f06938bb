"""The matmul-kernel benchmark: the products of an MLP-T block, their gradient forms, the step mix."""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import dot_kernels  # noqa: E402


def test_products_of_the_quickstart_block():
    shapes = dot_kernels.products(hidden=64, batch=64, seq=97, expansion=4.0)
    # token mixer over 97 positions: intermediate round(4 * 97 * 2 / 3) = 259 -> 512
    assert shapes["token_up"] == (64 * 64, 97, 512)
    assert shapes["token_down"] == (64 * 64, 512, 97)
    # channel MLP at hidden 64: round(170.67) = 171 -> 256
    assert shapes["channel_up"] == (64 * 97, 64, 256)
    assert shapes["channel_down"] == (64 * 97, 256, 64)


@pytest.mark.parametrize("form", dot_kernels.FORMS)
def test_operand_shapes_give_the_products_flops(form):
    m, k, n = 12, 5, 7
    sa, sb = dot_kernels.operand_shapes(form, m, k, n)
    a, b = np.ones(sa), np.ones(sb)
    out = {"fwd": lambda: a @ b, "dX": lambda: a @ b.T, "dW": lambda: a.T @ b}[form]()
    # every form is one product of m * k * n multiply-adds
    assert out.size * {"fwd": k, "dX": n, "dW": m}[form] == m * k * n


def test_step_mix_weights_forward_by_h_cycles():
    shapes = {"p": (2, 3, 4)}  # 48 FLOPs per form
    rates = {("p", "fwd"): {"xla": 100.0}, ("p", "dX"): {"xla": 50.0}, ("p", "dW"): {"xla": 25.0}}
    # H = 3: 3 forward products at 100, one dX at 50, one dW at 25 -> 5 products in 3/100 + 1/50 + 1/25
    expected = 5 / (3 / 100 + 1 / 50 + 1 / 25)
    assert dot_kernels.step_mix_rate(rates, shapes, "xla", 3) == pytest.approx(expected)
    assert math.isnan(dot_kernels.step_mix_rate(rates, shapes, "torch", 3))


def test_tf_kernels_time_small_products():
    rates = dot_kernels.time_tf({"p": (64, 16, 32)}, repeats=1)
    assert set(rates) == {("p", f) for f in dot_kernels.FORMS}
    for row in rates.values():
        assert set(row) == {"xla", "tf"} and all(v > 0 for v in row.values())
