"""Tolerances of the low-precision tests, derived from the number formats."""

# Spacing of bfloat16 numbers in [1, 2): the relative rounding error is <= BF16_EPS / 2.
BF16_EPS = 2.0**-8
