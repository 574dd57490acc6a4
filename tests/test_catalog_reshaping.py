"""Reshaping and Rescaling specs, checked by hand and against the real Keras layers."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

from studio.catalog import CATALOG, ParamError, ShapeError  # noqa: E402
from studio.catalog.reshaping import (  # noqa: E402
    SPECS,
    Cropping2D,
    Permute,
    Rescaling,
    Reshape,
    ZeroPadding2D,
)

KINDS = {spec.key: spec for spec in SPECS}


def nested(four: tuple[int, int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Our (top, bottom, left, right) as Keras's ((top, bottom), (left, right))."""
    top, bottom, left, right = four
    return ((top, bottom), (left, right))


def keras_kwargs(kind: str, clean: dict) -> dict:
    if kind == "ZeroPadding1D":
        return {"padding": tuple(clean["padding"])}
    if kind == "ZeroPadding2D":
        return {"padding": nested(clean["padding"])}
    if kind == "Cropping2D":
        return {"cropping": nested(clean["cropping"])}
    return dict(clean)


def ours(kind: str, params: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    spec = KINDS[kind]
    clean = spec.validate_params(params)
    return spec.output_shape(clean, [shape]), spec.count_params(clean, [shape]).total


def theirs(kind: str, params: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The Keras layer built with every parameter of ours, defaults included."""
    layer = getattr(keras.layers, kind)(**keras_kwargs(kind, KINDS[kind].validate_params(params)))
    out = layer(keras.Input(shape))
    return tuple(out.shape[1:]), layer.count_params()


def test_specs_are_registered():
    assert [spec.key for spec in SPECS] == [
        "Flatten",
        "Reshape",
        "Permute",
        "UpSampling2D",
        "ZeroPadding2D",
        "Cropping2D",
        "Rescaling",
        "ZeroPadding1D",
        "Slice",
        "ClassToken",
    ]
    for spec in SPECS:
        assert CATALOG.get(spec.key).key == spec.key
        categories = {"Rescaling": "Preprocessing", "ClassToken": "Attention"}
        assert spec.category == categories.get(spec.key, "Reshaping")
        assert all(param.doc for param in spec.params)


def test_defaults():
    assert Rescaling().defaults() == {"scale": 1 / 255, "offset": 0.0}
    assert ZeroPadding2D().defaults() == {"padding": (1, 1, 1, 1)}
    assert Cropping2D().defaults() == {"cropping": (0, 0, 0, 0)}
    assert Reshape().defaults() == {"target_shape": (-1,)}


# --- hand-worked cases --------------------------------------------------------------------------


def test_flatten_and_reshape_by_hand():
    # 4 * 4 * 3 = 48, no weights.
    assert ours("Flatten", {}, (4, 4, 3)) == ((48,), 0)
    assert ours("Flatten", {}, (7,)) == ((7,), 0)
    # 4 * 4 * 2 = 32 elements: -1 is 32 / 8 = 4, or 32 / 2 = 16.
    assert ours("Reshape", {"target_shape": (-1, 8)}, (4, 4, 2)) == ((4, 8), 0)
    assert ours("Reshape", {"target_shape": (2, -1)}, (4, 4, 2)) == ((2, 16), 0)
    assert ours("Reshape", {"target_shape": (8, 2, 2)}, (4, 4, 2)) == ((8, 2, 2), 0)
    assert ours("Reshape", {}, (3, 5)) == ((15,), 0)


def test_permute_by_hand():
    assert ours("Permute", {"dims": (2, 1)}, (10, 3)) == ((3, 10), 0)
    # (h, w, c) = (4, 5, 3) with dims (3, 1, 2) gives (c, h, w) = (3, 4, 5).
    assert ours("Permute", {"dims": (3, 1, 2)}, (4, 5, 3)) == ((3, 4, 5), 0)


def test_image_resizing_by_hand():
    # (4 * 2, 5 * 3) = (8, 15).
    assert ours("UpSampling2D", {"size": (2, 3)}, (4, 5, 3)) == ((8, 15, 3), 0)
    # top 1 + bottom 2 on 4 rows: 7; left 3 + right 4 on 5 columns: 12.
    assert ours("ZeroPadding2D", {"padding": (1, 2, 3, 4)}, (4, 5, 3)) == ((7, 12, 3), 0)
    # 10 - 1 - 2 = 7 rows, 12 - 3 - 4 = 5 columns.
    assert ours("Cropping2D", {"cropping": (1, 2, 3, 4)}, (10, 12, 3)) == ((7, 5, 3), 0)
    assert ours("Rescaling", {"scale": 2.0, "offset": -1.0}, (6, 2)) == ((6, 2), 0)


def test_slice_by_hand():
    # channels 2:5 of 6 leave 3; rows 1:3 of 4 leave 2; the last axis of a vector counts as -1 or 1.
    assert ours("Slice", {"axis": -1, "start": 2, "stop": 5}, (4, 4, 6)) == ((4, 4, 3), 0)
    assert ours("Slice", {"axis": 1, "start": 1, "stop": 3}, (4, 5, 6)) == ((2, 5, 6), 0)
    assert ours("Slice", {"axis": 1, "start": 0, "stop": 1}, (9,)) == ((1,), 0)
    assert ours("Slice", {"axis": -2, "start": 3, "stop": 5}, (6, 8)) == ((2, 8), 0)


def test_class_token_by_hand():
    # one more step; one learned value per feature
    assert ours("ClassToken", {}, (196, 768)) == ((197, 768), 768)
    with pytest.raises(ShapeError, match="expects a sequence input of rank 3"):
        ours("ClassToken", {}, (4, 4, 3))


def test_slice_errors_name_the_axis_and_the_bounds():
    with pytest.raises(ShapeError, match=r"stop=7 is past the end of axis -1, of length 6"):
        ours("Slice", {"axis": -1, "start": 2, "stop": 7}, (4, 4, 6))
    with pytest.raises(ShapeError, match=r"axis=4 is out of range .* expected 1 to 3"):
        ours("Slice", {"axis": 4, "start": 0, "stop": 1}, (4, 4, 6))
    with pytest.raises(ParamError, match="start < stop"):
        KINDS["Slice"].validate_params({"axis": 1, "start": 3, "stop": 3})
    with pytest.raises(ParamError, match="axis 0 is the batch"):
        KINDS["Slice"].validate_params({"axis": 0, "start": 0, "stop": 1})


# --- against real Keras -------------------------------------------------------------------------

KERAS_CASES = [
    ("Flatten", {}, (4, 4, 3)),
    ("Flatten", {}, (7,)),
    ("Flatten", {}, (3, 5)),
    ("Reshape", {"target_shape": (-1,)}, (4, 4, 2)),
    ("Reshape", {"target_shape": (-1, 8)}, (4, 4, 2)),
    ("Reshape", {"target_shape": (2, -1, 2)}, (4, 4, 2)),
    ("Reshape", {"target_shape": (8, 2, 2)}, (4, 4, 2)),
    ("Reshape", {"target_shape": (7, 7, 16)}, (784,)),
    ("Permute", {"dims": (2, 1)}, (10, 3)),
    ("Permute", {"dims": (1, 2)}, (10, 3)),
    ("Permute", {"dims": (3, 1, 2)}, (4, 5, 3)),
    ("Permute", {"dims": (2, 3, 1)}, (4, 5, 3)),
    ("UpSampling2D", {}, (3, 4, 2)),
    ("UpSampling2D", {"size": (1, 3), "interpolation": "bilinear"}, (5, 4, 2)),
    ("ZeroPadding2D", {}, (3, 4, 2)),
    ("ZeroPadding2D", {"padding": (0, 2, 3, 0)}, (5, 5, 1)),
    ("Cropping2D", {}, (3, 4, 2)),
    ("Cropping2D", {"cropping": (1, 2, 0, 3)}, (4, 5, 1)),
    ("Rescaling", {}, (8, 8, 3)),
    ("Rescaling", {"scale": 1 / 127.5, "offset": -1.0}, (10,)),
    ("ZeroPadding1D", {}, (5, 3)),
    ("ZeroPadding1D", {"padding": (0, 4)}, (2, 7)),
]


@pytest.mark.parametrize(("kind", "params", "shape"), KERAS_CASES, ids=lambda value: str(value))
def test_matches_keras(kind, params, shape):
    assert ours(kind, params, shape) == theirs(kind, params, shape)


# --- errors -------------------------------------------------------------------------------------


def test_reshape_element_count_mismatch_names_both_counts():
    with pytest.raises(ShapeError) as error:
        ours("Reshape", {"target_shape": (5, 6)}, (4, 4, 2))
    message = str(error.value)
    assert "(None, 4, 4, 2) of 32 elements" in message
    assert "(None, 5, 6) of 30 elements" in message
    with pytest.raises(ShapeError, match=r"32 is not a multiple of 5"):
        ours("Reshape", {"target_shape": (-1, 5)}, (4, 4, 2))
    with pytest.raises(ValueError):  # Keras agrees
        theirs("Reshape", {"target_shape": (5, 6)}, (4, 4, 2))


def test_reshape_rejects_two_unknown_dimensions():
    with pytest.raises(ParamError, match="at most one -1"):
        Reshape().validate_params({"target_shape": (-1, -1)})


def test_bad_permutations():
    with pytest.raises(ParamError, match=r"permutation of 1\.\.2.*dims=\(1, 1\)"):
        Permute().validate_params({"dims": (1, 1)})
    with pytest.raises(ParamError, match=r"permutation of 1\.\.2.*dims=\(2, 3\)"):
        Permute().validate_params({"dims": (2, 3)})
    with pytest.raises(ParamError):
        Permute().validate_params({"dims": (0, 1)})
    # A valid permutation of the wrong length for the input.
    with pytest.raises(
        ShapeError, match=r"dims \(2, 1\) must be a permutation of 1\.\.3, .*\(None, 4, 5, 3\)"
    ):
        ours("Permute", {"dims": (2, 1)}, (4, 5, 3))


@pytest.mark.parametrize(
    ("cropping", "shape", "text"),
    [
        ((2, 2, 0, 0), (4, 5, 1), "cropping 2 + 2 rows from the top and bottom leaves none of the 4 rows"),
        (
            (0, 0, 5, 1),
            (4, 5, 1),
            "cropping 5 + 1 columns from the left and right leaves none of the 5 columns",
        ),
    ],
)
def test_cropping_everything_away(cropping, shape, text):
    with pytest.raises(ShapeError) as error:
        ours("Cropping2D", {"cropping": cropping}, shape)
    assert text in str(error.value)
    assert "(None, 4, 5, 1)" in str(error.value)
    with pytest.raises(ValueError):  # Keras agrees
        theirs("Cropping2D", {"cropping": cropping}, shape)


@pytest.mark.parametrize("kind", ["UpSampling2D", "ZeroPadding2D", "Cropping2D"])
def test_image_layers_need_an_image(kind):
    with pytest.raises(ShapeError, match=r"rank 4 .* but received \(None, 10\)"):
        ours(kind, {}, (10,))


def test_bad_values_are_param_errors():
    with pytest.raises(ParamError, match="padding"):
        ZeroPadding2D().validate_params({"padding": (1, -1, 0, 0)})
    with pytest.raises(ParamError, match="cropping"):
        Cropping2D().validate_params({"cropping": (1, 1)})
    with pytest.raises(ParamError, match="interpolation='bicubic'"):
        KINDS["UpSampling2D"].validate_params({"interpolation": "bicubic"})
    with pytest.raises(ParamError, match="scale"):
        Rescaling().validate_params({"scale": float("nan")})
