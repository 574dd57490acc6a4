"""The data contract: channels-first image arrays are transposed when that is unambiguous, and said so."""

from __future__ import annotations

import numpy as np
import pytest

from studio.datasets import DatasetError, fit_to_model, load_dataset


def write_images(path, channels_first: bool, channels: int = 3, n: int = 40):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4, 5, channels)).astype(np.float32)  # channels-last: height 4, width 5
    y = rng.integers(0, 2, size=n)
    np.savez(path, x=np.moveaxis(x, -1, 1) if channels_first else x, y=y)
    return x, y


def test_channels_first_images_are_transposed_and_the_user_is_told(tmp_path):
    x, _ = write_images(tmp_path / "cf.npz", channels_first=True)
    write_images(tmp_path / "cl.npz", channels_first=False)
    fitted = {}
    for name in ("cf", "cl"):
        dataset = load_dataset(str(tmp_path / f"{name}.npz"), seed=3, normalize=False)
        fitted[name] = fit_to_model(dataset, (4, 5, 3), (2,), "cross_entropy")
    assert np.array_equal(fitted["cf"].x_train, fitted["cl"].x_train)
    assert np.array_equal(fitted["cf"].x_val, fitted["cl"].x_val)
    assert fitted["cl"].notes == []
    assert "channels-first samples (3, 4, 5)" in fitted["cf"].notes[0]
    assert "(4, 5, 3)" in fitted["cf"].notes[0]


def test_images_that_fit_neither_layout_are_refused_naming_both(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "odd.npz", x=rng.random((10, 5, 3, 4)).astype(np.float32), y=np.arange(10) % 2)
    dataset = load_dataset(str(tmp_path / "odd.npz"))
    with pytest.raises(DatasetError) as error:
        fit_to_model(dataset, (4, 5, 3), (2,), "cross_entropy")
    message = str(error.value)
    assert "(5, 3, 4)" in message and "channels-last" in message and "(3, 4, 5)" in message


def test_single_channel_images_reshape_without_mixing_axes(tmp_path):
    x, _ = write_images(tmp_path / "gray.npz", channels_first=True, channels=1)
    dataset = fit_to_model(
        load_dataset(str(tmp_path / "gray.npz"), normalize=False), (4, 5, 1), (2,), "cross_entropy"
    )
    everything = np.concatenate([dataset.x_train, dataset.x_val])
    assert sorted(map(tuple, everything.reshape(len(everything), -1))) == sorted(
        map(tuple, x.reshape(len(x), -1))
    )
