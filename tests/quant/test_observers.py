import numpy as np
import pytest

from edgeq.quant.observers import BINS, StreamingHistogram, observe


def test_histogram_memory_is_bounded_and_counts_are_kept():
    h = StreamingHistogram()
    rng = np.random.default_rng(0)
    total = 0
    for k in range(50):  # growing ranges force repeated doubling
        x = rng.normal(0, 1 + k, 1000)
        h.update(x)
        total += x.size
        assert h.counts.shape == (BINS,)
    assert h.counts.sum() == total == h.count
    assert h.radius >= max(abs(h.min), abs(h.max))


def test_doubling_keeps_mass_in_the_right_place():
    h = StreamingHistogram()
    h.update(np.array([0.5, 0.5, -0.25]))
    h.update(np.array([3.9]))  # forces R: 0.5 -> 1 -> 2 -> 4
    c = h.centers[h.counts > 0]
    assert np.isclose(c.min(), -0.25, atol=h.radius * 2 / BINS)
    assert np.isclose(c.max(), 3.9, atol=h.radius * 2 / BINS)
    assert h.counts[np.abs(h.centers - 0.5) < 4 / BINS * 2].sum() == 2


def test_minmax_is_exact_and_percentile_clips_outliers():
    h = StreamingHistogram()
    x = np.concatenate([np.random.default_rng(1).uniform(-1, 1, 100000), [50.0]])
    h.update(x)
    assert observe(h, "minmax") == (float(x.min()), 50.0)
    lo, hi = observe(h, "percentile", percentile=99.9)
    assert hi < 2 and lo > -1.01


def test_mse_and_entropy_shrink_ranges_with_long_tails():
    h = StreamingHistogram()
    h.update(np.random.default_rng(2).laplace(0, 1, 200000))
    mm = observe(h, "minmax")
    for method in ("mse", "entropy"):
        lo, hi = observe(h, method)
        assert mm[0] <= lo < 0 < hi <= mm[1]
        assert hi - lo < 0.9 * (mm[1] - mm[0]), method


def test_unknown_observer_is_refused():
    h = StreamingHistogram()
    h.update(np.ones(3))
    with pytest.raises(ValueError, match="unknown observer"):
        observe(h, "magic")
