"""The saturating power law acc = a − b·x^(−c), fitted with uncertainties.

The study fits it to accuracy against parameters (Exp 1), training-set size (Exp 4a) and augmentations
(Exp 4b). `a` is the asymptote, `b` the gap scale, `c` the decay exponent.

Numerics: x spans orders of magnitude (1e6–1e8 parameters), where x^(−c) is tiny and the Jacobian badly
scaled. The fit therefore runs on u = x/x0 with x0 the geometric mean of x, as y = a − β·u^(−c), and maps
back with b = β·x0^c; the covariance is carried through the same map exactly (delta method on a
reparametrisation). For every c on a grid the model is linear in (a, β), so the best grid point gives a
closed-form start for `scipy.optimize.curve_fit`; this makes the fit independent of units (fraction or %).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import optimize, stats

# Grid of exponents for the closed-form initialisation.
_C_GRID = np.geomspace(0.02, 4.0, 40)
_C_BOUNDS = (1e-3, 10.0)


def saturating_power_law(x, a, b, c):
    """acc = a − b·x^(−c) (x > 0)."""
    return a - b * np.power(np.asarray(x, dtype=float), -c)


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """Result of `fit_power_law`: parameters, standard errors and prediction bands.

    Attributes:
      a, b, c: Parameters of y = a − b·x^(−c) in the units of the inputs.
      a_se, b_se, c_se: Standard errors from the covariance (NaN when there are only 3 points).
      cov: 3x3 covariance of (a, b, c) (NaN-filled when not estimable).
      n: Number of points fitted.
      rmse: Root-mean-square residual.
      r2: Coefficient of determination.
      x0: Internal x scale (geometric mean of x).
      cov_scaled: Covariance of (a, β, c) for y = a − β·(x/x0)^(−c), used for well-conditioned bands.
      at_bound: Names of parameters that ended on a bound ("c" at its minimum means the points show no
        saturation, the law degenerates towards a logarithm; "a" at `a_max`). Such fits are unreliable.
    """

    a: float
    b: float
    c: float
    a_se: float
    b_se: float
    c_se: float
    cov: np.ndarray
    n: int
    rmse: float
    r2: float
    x0: float
    cov_scaled: np.ndarray
    at_bound: tuple[str, ...] = ()

    @property
    def params(self) -> tuple[float, float, float]:
        return self.a, self.b, self.c

    def predict(self, x) -> np.ndarray:
        """Fitted values at `x`."""
        return saturating_power_law(x, self.a, self.b, self.c)

    def _grad_scaled(self, x) -> np.ndarray:
        """d y / d(a, β, c) at x in the scaled parametrisation, shape [len(x), 3]."""
        u = np.asarray(x, dtype=float) / self.x0
        uc = np.power(u, -self.c)
        beta = self.b / self.x0**self.c
        return np.stack([np.ones_like(u), -uc, beta * uc * np.log(u)], axis=-1)

    def band(self, x, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise confidence band of the fitted curve (delta method, Student-t with n−3 dof).

        Args:
          x: Points where the band is wanted.
          level: Two-sided confidence level.

        Returns:
          (lower, upper) arrays like `x`; NaN when the covariance is not estimable (n = 3).
        """
        x = np.asarray(x, dtype=float)
        y = self.predict(x)
        if not np.all(np.isfinite(self.cov_scaled)) or self.n <= 3:
            nan = np.full_like(y, np.nan)
            return nan, nan
        # In the scaled parametrisation the gradient entries are O(1): no cancellation at large x.
        g = self._grad_scaled(x)
        var = np.einsum("...i,ij,...j->...", g, self.cov_scaled, g)
        sd = np.sqrt(np.maximum(var, 0.0))
        q = stats.t.ppf(0.5 + level / 2, df=self.n - 3)
        return y - q * sd, y + q * sd

    def bootstrap_band(
        self, x_data, y_data, x, level: float = 0.95, n_boot: int = 200, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise band from a residual bootstrap (refits on fitted + resampled residuals).

        Useful as a check on the delta-method band when the law is strongly non-linear in c.

        Args:
          x_data, y_data: The points that were fitted.
          x: Points where the band is wanted.
          level: Two-sided confidence level.
          n_boot: Bootstrap replicates.
          seed: Seed of the resampling (reproducible).

        Returns:
          (lower, upper) percentiles of the refitted curves at `x`.
        """
        x_data = np.asarray(x_data, dtype=float)
        y_data = np.asarray(y_data, dtype=float)
        rng = np.random.default_rng(seed)
        fitted = self.predict(x_data)
        resid = y_data - fitted
        # Inflate residuals by sqrt(n/(n-p)) so that their spread is not biased low.
        resid = resid * math.sqrt(len(resid) / max(len(resid) - 3, 1))
        curves = []
        for _ in range(n_boot):
            yb = fitted + rng.choice(resid, size=len(resid), replace=True)
            try:
                fb = fit_power_law(x_data, yb, with_uncertainty=False)
            except (RuntimeError, ValueError):
                continue
            curves.append(fb.predict(x))
        if not curves:
            nan = np.full(np.shape(x), np.nan)
            return nan, nan
        curves = np.asarray(curves)
        lo, hi = 50 * (1 - level), 50 * (1 + level)
        return np.percentile(curves, lo, axis=0), np.percentile(curves, hi, axis=0)

    def x_for(self, y: float) -> float:
        """The x at which the fitted law reaches `y` (NaN if it never does)."""
        gap = self.a - y
        if self.b == 0 or gap == 0 or (gap / self.b) <= 0:
            return math.nan
        log_x = -math.log(gap / self.b) / self.c
        return (
            math.exp(log_x) if log_x < 700 else math.inf
        )  # Beyond float range: never, in practice.

    def formula(self, digits: int = 3) -> str:
        """Human-readable law with standard errors, e.g. `acc = 87.1(±0.4) − 12.0(±3.0)·x^(−0.51(±0.08))`."""

        def fmt(v, se):
            s = f"{v:.{digits}g}"
            return s if not np.isfinite(se) else f"{s}(±{se:.2g})"

        return (
            f"acc = {fmt(self.a, self.a_se)} − {fmt(self.b, self.b_se)}"
            f"·x^(−{fmt(self.c, self.c_se)})"
        )

    def to_dict(self) -> dict:
        """Plain-float summary (JSON-friendly)."""
        return {
            k: float(getattr(self, k))
            for k in ("a", "b", "c", "a_se", "b_se", "c_se", "rmse", "r2", "x0")
        } | {"n": self.n}


def _linear_start(u: np.ndarray, y: np.ndarray, c: float) -> tuple[float, float, float]:
    """Least-squares (a, β) for fixed c, and its residual sum of squares."""
    z = np.power(u, -c)
    design = np.stack([np.ones_like(z), -z], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    r = y - design @ coef
    return float(coef[0]), float(coef[1]), float(r @ r)


def fit_power_law(
    x, y, *, with_uncertainty: bool = True, sigma=None, a_max: float | None = None
) -> PowerLawFit:
    """Fits y = a − b·x^(−c) by non-linear least squares.

    Args:
      x: Positive abscissae (parameters, puzzles, augmentations...). Repeated x (seeds) are fine.
      y: Values (accuracy as a fraction or in %; the fit does not assume a unit).
      with_uncertainty: Require ≥ 4 points so that standard errors and bands exist; with False, 3 points
        are enough and the errors are NaN.
      sigma: Optional per-point standard deviations (weights), as in `scipy.optimize.curve_fit`.
      a_max: Upper bound of the asymptote (e.g. 100 for accuracy in %, 1 for a fraction); None: free.

    Returns:
      A `PowerLawFit`.

    Raises:
      ValueError: Fewer than 3 finite points with x > 0 (4 with `with_uncertainty`), or all x equal.
      RuntimeError: The optimiser did not converge.
    """
    x, y, sigma = _usable_points(x, y, sigma, with_uncertainty)
    x0 = float(np.exp(np.mean(np.log(x))))
    u = x / x0
    popt, pcov = _least_squares(u, y, sigma, a_max)
    a, beta, c = (float(v) for v in popt)
    at_bound = []
    if a_max is not None and a >= a_max - 1e-6 * (abs(a_max) + 1.0):
        at_bound.append("a")
    if c <= _C_BOUNDS[0] * 1.01 or c >= _C_BOUNDS[1] * 0.99:
        at_bound.append("c")
    resid = y - _model(u, a, beta, c)
    ss_res = float(resid @ resid)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan

    # Back to original units: b = β·x0^c; J = d(a, b, c)/d(a, β, c).
    scale = x0**c
    b = beta * scale
    jac = np.array([[1.0, 0.0, 0.0], [0.0, scale, beta * scale * math.log(x0)], [0.0, 0.0, 1.0]])
    pcov, cov, se = _covariances(pcov, jac, len(x))
    return PowerLawFit(
        a=a,
        b=float(b),
        c=c,
        a_se=float(se[0]),
        b_se=float(se[1]),
        c_se=float(se[2]),
        cov=cov,
        n=int(len(x)),
        rmse=math.sqrt(ss_res / len(x)),
        r2=r2,
        x0=x0,
        cov_scaled=np.asarray(pcov, dtype=float),
        at_bound=tuple(at_bound),
    )


def _model(uu, a, beta, c):
    return a - beta * np.power(uu, -c)


def _usable_points(x, y, sigma, with_uncertainty: bool):
    """The finite points with x > 0 (and their sigmas), checked to be enough for the fit."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=float).ravel()[ok]
    x, y = x[ok], y[ok]
    need = 4 if with_uncertainty else 3
    if len(x) < need:
        why = "standard errors and a band need" if with_uncertainty else "a 3-parameter fit needs"
        raise ValueError(
            f"power-law fit: {len(x)} usable point(s) (finite, x > 0); {why} at least {need}"
        )
    if np.unique(x).size < 3:
        raise ValueError("power-law fit: needs at least 3 distinct x values")
    return x, y, sigma


def _least_squares(u, y, sigma, a_max):
    """(popt, pcov) of y = a − β·u^(−c) in the scaled abscissa u, from the best linear start."""
    starts = [(_linear_start(u, y, c), c) for c in _C_GRID]
    (a0, beta0, _), c0 = min(starts, key=lambda s: s[0][2])
    # a and β are free (β < 0 allows a saturating decrease); c stays positive so that the law saturates.
    lower = [-np.inf, -np.inf, _C_BOUNDS[0]]
    upper = [np.inf if a_max is None else float(a_max), np.inf, _C_BOUNDS[1]]
    if a_max is not None and a0 >= a_max:
        # Start strictly inside the box (trf needs it); β follows from the best line at this c.
        a0 = float(a_max) - 1e-3 * (abs(float(a_max)) + 1.0)
    p0 = [a0, beta0, float(np.clip(c0, *_C_BOUNDS))]
    with warnings.catch_warnings():
        # With exactly 3 points the covariance is not estimable; that case is reported as NaN errors.
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        return optimize.curve_fit(
            _model,
            u,
            y,
            p0=p0,
            sigma=sigma,
            absolute_sigma=False,
            bounds=(lower, upper),
            maxfev=20000,
        )


def _covariances(pcov, jac, n: int):
    """(scaled-unit covariance, original-unit covariance J·pcov·Jᵀ, standard errors); all NaN with 3
    points or a covariance the optimiser could not estimate."""
    if n > 3 and np.all(np.isfinite(pcov)):
        cov = jac @ pcov @ jac.T
        return pcov, cov, np.sqrt(np.maximum(np.diag(cov), 0.0))
    return np.full((3, 3), np.nan), np.full((3, 3), np.nan), np.full(3, np.nan)
