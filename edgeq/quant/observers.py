"""Range observers over a streaming, fixed-size histogram.

``StreamingHistogram`` keeps ``BINS`` bins over the symmetric range ``[-R, R]``; when a value
beyond ``R`` arrives, ``R`` doubles (as often as needed) and pairs of bins merge, so memory is
constant however many samples stream through. Old bin ``i`` of ``N`` lands in new bin
``N/4 + i//2``. Exact min, max, sum and count are kept beside it (and the per-channel mean along
axis 1, used by bias correction).

Observers turn a histogram into a clipping range ``(lo, hi)``:

- ``minmax``: the exact observed min and max;
- ``percentile``: the ``p`` and ``100 - p`` percentiles (default p = 99.99);
- ``mse``: the range ``[a * min, a * max]`` (a in a grid over (0, 1]) minimizing the expected
  squared error of int8 quantize-dequantize over the histogram (rounding plus clipping error);
- ``entropy``: TensorRT-style KL divergence on ``|x|``: the threshold ``T`` whose 128-level
  quantized distribution is closest to the clipped reference; range ``[max(min, -T), min(max, T)]``.
"""

from __future__ import annotations

import numpy as np

BINS = 2048
OBSERVERS = ("minmax", "percentile", "mse", "entropy")


class StreamingHistogram:
    __slots__ = ("counts", "radius", "min", "max", "count", "sum", "channel_sum", "channel_n")

    def __init__(self):
        self.counts = np.zeros(BINS, np.int64)
        self.radius = 0.0
        self.min = np.inf
        self.max = -np.inf
        self.count = 0
        self.sum = 0.0
        self.channel_sum: np.ndarray | None = None
        self.channel_n = 0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        if x.size == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.count += x.size
        self.sum += float(x.sum())
        if x.ndim >= 2:
            cs = x.sum(axis=tuple(i for i in range(x.ndim) if i != 1))
            if self.channel_sum is None:
                self.channel_sum = np.zeros_like(cs)
            if self.channel_sum.shape == cs.shape:
                self.channel_sum += cs
                self.channel_n += x.size // x.shape[1]
        need = max(abs(lo), abs(hi))
        if self.radius == 0.0:
            self.radius = need if need > 0 else 1e-8
        while need > self.radius:
            self._double()
        w = 2 * self.radius / BINS
        idx = np.clip(((x.reshape(-1) + self.radius) / w).astype(np.int64), 0, BINS - 1)
        self.counts += np.bincount(idx, minlength=BINS)

    def _double(self) -> None:
        merged = self.counts.reshape(-1, 2).sum(axis=1)  # N/2 bins covering the old range
        new = np.zeros_like(self.counts)
        new[BINS // 4: BINS // 4 + BINS // 2] = merged
        self.counts = new
        self.radius *= 2

    @property
    def centers(self) -> np.ndarray:
        w = 2 * self.radius / BINS
        return -self.radius + (np.arange(BINS) + 0.5) * w

    @property
    def channel_mean(self) -> np.ndarray | None:
        if self.channel_sum is None or not self.channel_n:
            return None
        return self.channel_sum / self.channel_n


def _qdq_error(centers, counts, lo, hi, levels=256) -> float:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return float((counts * centers ** 2).sum())
    s = (hi - lo) / (levels - 1)
    z = np.round(-lo / s)
    q = np.clip(np.round(centers / s) + z, 0, levels - 1)
    return float((counts * (centers - (q - z) * s) ** 2).sum())


def observe(h: StreamingHistogram, method: str = "mse", percentile: float = 99.99,
            levels: int = 256) -> tuple[float, float]:
    if method not in OBSERVERS:
        raise ValueError(f"unknown observer {method!r}; expected one of {OBSERVERS}")
    if h.count == 0:
        raise ValueError("no data observed")
    if method == "minmax" or h.max == h.min:
        return float(h.min), float(h.max)
    c, n = h.centers, h.counts
    if method == "percentile":
        cdf = np.cumsum(n) / n.sum()
        lo = float(c[np.searchsorted(cdf, (100 - percentile) / 100)])
        hi = float(c[min(int(np.searchsorted(cdf, percentile / 100)), BINS - 1)])
        return max(lo, h.min), min(hi, h.max)
    if method == "mse":
        best, best_err = (h.min, h.max), _qdq_error(c, n, h.min, h.max, levels)
        for a in np.linspace(0.3, 1.0, 71)[:-1]:
            err = _qdq_error(c, n, a * h.min, a * h.max, levels)
            if err < best_err:
                best, best_err = (a * h.min, a * h.max), err
        return float(best[0]), float(best[1])
    if method == "entropy":
        t = _kl_threshold(h)
        return float(max(h.min, -t)), float(min(h.max, t))
    raise ValueError(f"unknown observer {method!r}; expected one of {OBSERVERS}")


def _kl_threshold(h: StreamingHistogram, quant_bins: int = 128) -> float:
    """Threshold on |x| minimizing KL(P || Q) (TensorRT's entropy calibration)."""
    half = BINS // 2
    mag = h.counts[half:].astype(np.float64) + h.counts[:half][::-1]
    nz = np.nonzero(mag)[0]
    last = int(nz[-1]) + 1 if nz.size else half
    w = h.radius / half
    if last <= quant_bins:
        return last * w
    best_t, best_kl = last * w, np.inf
    for i in range(quant_bins, last + 1, max(1, (last - quant_bins) // 128)):
        p = mag[:i].copy()
        p[i - 1] += mag[i:].sum()
        edges = np.linspace(0, i, quant_bins + 1).astype(np.int64)
        q = np.zeros(i)
        for k in range(quant_bins):
            seg = mag[edges[k]:edges[k + 1]]
            nzs = seg > 0
            if nzs.any():
                q[edges[k]:edges[k + 1]][nzs] = seg.sum() / nzs.sum()
        ps, qs = p.sum(), q.sum()
        if qs == 0:
            continue
        pn, qn = p / ps, q / qs
        mask = pn > 0
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / np.maximum(qn[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_t = kl, i * w
    return best_t
