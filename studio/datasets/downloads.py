"""Datasets that keras.datasets downloads (and caches in ~/.keras/datasets)."""

from __future__ import annotations

import urllib.error

import numpy as np

from studio.datasets.core import DatasetError, Samples

DESCRIPTIONS: dict[str, str] = {
    "mnist": "28x28 grey handwritten digits, 60000 + 10000 samples, 10 classes (downloads 11 MB)",
    "fashion_mnist": "28x28 grey clothing images, 60000 + 10000 samples, 10 classes (downloads 30 MB)",
    "cifar10": "32x32 colour photos, 50000 + 10000 samples, 10 classes (downloads 170 MB)",
}

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def load_keras(name: str) -> Samples:
    """The dataset's own train/test split, the test part used for validation; images in [0, 1]."""
    (x_train, y_train), (x_test, y_test) = _download(name)
    parts = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[..., np.newaxis]
        parts.append((x.astype(np.float32) / 255.0, np.asarray(y).reshape(len(y)).astype(np.int64)))
    (x_train, y_train), (x_val, y_val) = parts
    names = CLASS_NAMES[name]
    return Samples(
        x_train,
        y_train,
        "classification",
        len(names),
        list(names),
        kind="scaled",
        x_val=x_val,
        y_val=y_val,
        scale=1 / 255,
    )


def _download(name: str):
    try:
        import keras
    except ImportError as error:
        raise DatasetError(f"could not load {name}: keras is not installed ({error})") from None
    try:
        return getattr(keras.datasets, name).load_data()
    except Exception as error:  # keras.utils.get_file raises a bare Exception on a failed download
        hint = "download it elsewhere and load the IDX or .npz files instead"
        if _looks_offline(error):
            raise DatasetError(f"could not download {name}: no network access ({error}); {hint}") from error
        raise DatasetError(f"could not download {name} ({type(error).__name__}: {error}); {hint}") from error


def _looks_offline(error: BaseException) -> bool:
    text = str(error)
    return (
        isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError, OSError))
        or "URL fetch failure" in text
        or "Name or service not known" in text
    )
