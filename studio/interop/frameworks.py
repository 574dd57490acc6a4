"""Lazy, quiet imports of the frameworks (never at module level: the GUI must start fast)."""

from __future__ import annotations

import os


def import_keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def import_torch():
    import torch

    return torch


def import_onnx():
    import onnx

    return onnx
