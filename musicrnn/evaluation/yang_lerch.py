"""Yang & Lerch (2018), "On the evaluation of generative models in music" (Neural Computing and
Applications 32, 2020; their toolbox mgeval): compare a generated set with a real one through the
distributions of pairwise distances of per-piece features.

For each feature: intra-set distances are the Euclidean distances between every two pieces of the real
set; inter-set distances are those between every real and every generated piece. Each distribution is
smoothed with a Gaussian kernel density estimate (scipy), and we report the overlapping area
OA = integral of min(p_intra, p_inter) (1 = the generated pieces sit among the real ones as the real ones
sit among themselves) and the KL divergence KL(p_intra || p_inter) (0 is best), as mgeval does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from musicrnn.evaluation.features import durations, intervals, ordered, pitch_class_histogram, time_histogram


def _mean_ioi(notes: np.ndarray) -> float:
    onsets = np.unique(ordered(notes)["start_beat"])
    return float(np.diff(onsets).mean()) if len(onsets) > 1 else 0.0


# mgeval's piece-level features (its bar-level ones need bar-aligned music, which generated notes lack).
FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "pitch_count": lambda n: np.array([len(np.unique(n["pitch"]))], dtype=np.float64),
    "pitch_class_histogram": pitch_class_histogram,
    "pitch_range": lambda n: np.array([float(n["pitch"].max() - n["pitch"].min())]),
    "avg_pitch_interval": lambda n: np.array([float(np.abs(intervals(n)).mean()) if len(n) > 1 else 0.0]),
    "avg_ioi": lambda n: np.array([_mean_ioi(n)]),
    "note_length_histogram": lambda n: time_histogram(durations(n)),
}


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between rows of a (each pair once) or between every row of a and of b."""
    if b is None:
        i, j = np.triu_indices(len(a), k=1)
        return np.linalg.norm(a[i] - a[j], axis=1)
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).ravel()


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from scipy.stats import gaussian_kde

    if len(values) < 2 or np.ptp(values) == 0:
        # A point mass (e.g. every distance 0): a narrow Gaussian at its value, one grid step wide.
        width = (grid[1] - grid[0]) if len(grid) > 1 else 1.0
        density = np.exp(-0.5 * ((grid - values.mean()) / width) ** 2)
    else:
        density = gaussian_kde(values)(grid)
    return density / np.trapezoid(density, grid)


def overlap_and_kl(intra: np.ndarray, inter: np.ndarray, points: int = 1000) -> tuple[float, float]:
    low = min(intra.min(), inter.min())
    high = max(intra.max(), inter.max())
    pad = 0.1 * (high - low) if high > low else 1.0
    grid = np.linspace(low - pad, high + pad, points)
    p, q = _density(intra, grid), _density(inter, grid)
    overlap = float(np.trapezoid(np.minimum(p, q), grid))
    eps = 1e-12
    kl = float(np.trapezoid(p * np.log((p + eps) / (q + eps)), grid))
    return overlap, max(kl, 0.0)


def yang_lerch(real: Sequence[np.ndarray], generated: Sequence[np.ndarray]) -> dict[str, dict[str, float]]:
    """{feature: {"overlap_area", "kl_divergence", "intra_real_mean", "inter_mean"}} for the two sets."""
    if len(real) < 2 or len(generated) < 1:
        raise ValueError(
            f"Yang & Lerch needs >= 2 real and >= 1 generated pieces, got {len(real)} and {len(generated)}"
        )
    results = {}
    for name, feature in FEATURES.items():
        a = np.stack([feature(p) for p in real])
        b = np.stack([feature(p) for p in generated])
        intra, inter = pairwise_distances(a), pairwise_distances(a, b)
        overlap, kl = overlap_and_kl(intra, inter)
        results[name] = {
            "overlap_area": overlap,
            "kl_divergence": kl,
            "intra_real_mean": float(intra.mean()),
            "inter_mean": float(inter.mean()),
        }
    return results
