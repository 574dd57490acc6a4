"""Built-in datasets: small, offline, seeded (sklearn's bundled sets and synthetic ones)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from studio.datasets.core import Samples

# Name -> one-line description, in the order the GUI's picker shows them.
DESCRIPTIONS: dict[str, str] = {
    "digits": "8x8 grey images of handwritten digits 0-9 (1797 samples, 10 classes)",
    "iris": "iris flowers: 4 measurements, 3 species (150 samples)",
    "wine": "wine chemistry: 13 measurements, 3 cultivars (178 samples)",
    "breast_cancer": "breast tumour diagnosis: 30 measurements, malignant or benign (569 samples)",
    "moons": "two interleaving half circles in 2-D, 2 classes (1000 samples)",
    "circles": "a small circle inside a larger one in 2-D, 2 classes (1000 samples)",
    "spirals": "three interleaved spiral arms in 2-D, 3 classes (900 samples)",
    "regression": "a smooth function of 8 features plus noise, 1 real target (1000 samples)",
}


def load_builtin(name: str, seed: int) -> Samples:
    """All samples of a built-in dataset; the synthetic ones are generated from ``seed``."""
    return _LOADERS[name](seed)


def make_spirals(
    n_samples: int = 900, arms: int = 3, noise: float = 0.05, turns: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``arms`` interleaved spirals in 2-D: x float32 (n, 2) within about [-1, 1], y int64 arm index.

    Each arm starts at the centre and winds ``turns`` times outwards; points are
    spread evenly along it, and ``noise`` is the standard deviation of the
    Gaussian jitter added to each coordinate.
    """
    if arms < 1 or n_samples < arms:
        raise ValueError(
            f"expected arms >= 1 and n_samples >= arms. Received: arms={arms}, n_samples={n_samples}"
        )
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % arms
    radius = np.sqrt(rng.uniform(0.0, 1.0, n_samples)) * 0.95 + 0.05
    angle = 2 * np.pi * (turns * radius + labels / arms)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    points += rng.normal(0.0, noise, points.shape)
    order = rng.permutation(n_samples)
    return points[order].astype(np.float32), labels[order].astype(np.int64)


def make_smooth_regression(
    n_samples: int = 1000, n_features: int = 8, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, 1) float32 (n, features); y float32 (n,) of unit-order scale.

    y is a random linear function of the features plus a sine of the first and
    a product of the next two, plus Gaussian noise of std ``noise``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n_samples, n_features))
    weights = rng.normal(0.0, 1.0, n_features) / np.sqrt(n_features)
    y = x @ weights + 0.5 * np.sin(2.0 * x[:, 0])
    if n_features >= 3:
        y += 0.3 * x[:, 1] * x[:, 2]
    y += rng.normal(0.0, noise, n_samples)
    return x.astype(np.float32), y.astype(np.float32)


def _digits(seed: int) -> Samples:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    names = [str(int(label)) for label in bunch.target_names]
    return Samples(x, bunch.target.astype(np.int64), "classification", 10, names, kind="scaled", scale=1 / 16)


def _sklearn_table(loader_name: str) -> Callable[[int], Samples]:
    def load(seed: int) -> Samples:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = [str(name) for name in bunch.target_names]
        task = "binary" if len(names) == 2 else "classification"
        return Samples(
            bunch.data.astype(np.float32),
            bunch.target.astype(np.int64),
            task,
            len(names),
            names,
            feature_names=[str(name) for name in bunch.feature_names],
            kind="tabular",
        )

    return load


def _moons(seed: int) -> Samples:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.15, random_state=seed)
    return Samples(x.astype(np.float32), y.astype(np.int64), "binary", 2, ["0", "1"], ["x1", "x2"])


def _circles(seed: int) -> Samples:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=1000, noise=0.08, factor=0.5, random_state=seed)
    return Samples(x.astype(np.float32), y.astype(np.int64), "binary", 2, ["outer", "inner"], ["x1", "x2"])


def _spirals(seed: int) -> Samples:
    x, y = make_spirals(900, arms=3, seed=seed)
    return Samples(x, y, "classification", 3, ["0", "1", "2"], ["x1", "x2"])


def _regression(seed: int) -> Samples:
    x, y = make_smooth_regression(1000, 8, seed=seed)
    return Samples(x, y, "regression", feature_names=[f"x{i + 1}" for i in range(8)])


_LOADERS: dict[str, Callable[[int], Samples]] = {
    "digits": _digits,
    "iris": _sklearn_table("load_iris"),
    "wine": _sklearn_table("load_wine"),
    "breast_cancer": _sklearn_table("load_breast_cancer"),
    "moons": _moons,
    "circles": _circles,
    "spirals": _spirals,
    "regression": _regression,
}
