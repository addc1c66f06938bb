"""Tests of trm_tf.analysis.fits: the saturating power law recovered from known laws.

The runs are fabricated with known values (tests/testing/analysis_study.py).
"""

import numpy as np
import pytest

from tests.testing.analysis_study import (
    PARAMS,
    A,
    B,
    C,
)
from trm_tf.analysis import fits


def test_fit_recovers_known_law_noiseless():
    x = np.array(PARAMS)
    fit = fits.fit_power_law(x, A - B * x ** (-C))
    assert fit.a == pytest.approx(A, rel=1e-6)
    assert fit.b == pytest.approx(B, rel=1e-4)
    assert fit.c == pytest.approx(C, rel=1e-5)
    assert fit.a_se < 1e-6 and fit.rmse < 1e-9
    # Same law in percent and in small-x units: the fit is unit-free.
    x2 = np.array([10, 25, 50, 100, 250, 500, 1000.0])
    fit2 = fits.fit_power_law(x2, 85.0 - 40.0 * x2 ** (-0.7))
    assert fit2.params == pytest.approx((85.0, 40.0, 0.7), rel=1e-4)


def test_fit_lightly_noisy_within_tolerance_and_band_covers_truth():
    rng = np.random.default_rng(0)
    x = np.repeat(np.array([100, 250, 500, 1000, 2000, 5000.0]), 2)
    truth = 0.87 - 1.5 * x ** (-0.5)
    y = truth + rng.normal(0, 0.002, x.shape)
    fit = fits.fit_power_law(x, y)
    assert fit.a == pytest.approx(0.87, abs=0.01)
    assert fit.c == pytest.approx(0.5, abs=0.1)
    assert abs(fit.a - 0.87) < 4 * fit.a_se + 1e-3
    grid = np.geomspace(100, 5000, 20)
    lo, hi = fit.band(grid)
    true_grid = 0.87 - 1.5 * grid ** (-0.5)
    assert np.all(lo <= hi) and np.mean((lo <= true_grid) & (true_grid <= hi)) >= 0.9
    blo, bhi = fit.bootstrap_band(x, y, grid, n_boot=50, seed=1)
    assert np.all(blo <= fit.predict(grid) + 1e-3) and np.all(bhi >= fit.predict(grid) - 1e-3)
    assert fit.x_for(fit.a - 0.01) > 0


def test_fit_few_points_errors():
    with pytest.raises(ValueError, match="at least 3"):
        fits.fit_power_law([1, 2], [0.1, 0.2], with_uncertainty=False)
    with pytest.raises(ValueError, match="at least 4"):
        fits.fit_power_law([1, 2, 3], [0.1, 0.2, 0.25])
    fit = fits.fit_power_law([1, 2, 4], [0.1, 0.2, 0.25], with_uncertainty=False)
    assert np.isnan(fit.a_se) and np.allclose(fit.predict([1, 2, 4]), [0.1, 0.2, 0.25], atol=1e-6)
    assert np.all(np.isnan(fit.band([1, 2])[0]))


def test_fit_flags_parameters_on_bounds():
    x = np.array([10, 30, 100, 300, 1000, 3000.0])
    y = 20 + 15 * np.log10(x)  # No saturation in sight, and heading past 100 %.
    fit = fits.fit_power_law(x, y, a_max=100.0)
    assert fit.a <= 100.0 and fit.at_bound
