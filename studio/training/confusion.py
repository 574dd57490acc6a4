"""The confusion matrix and per-class figures of a classification run, from its validation predictions.

Both engines hand in the model's scores on the validation set (channels-last,
as Keras computes them) and write the same ``confusion_matrix.json``:

    {"split": "validation", "weights": "final", "epoch": 10,
     "classes": ["0", "1", ...], "matrix": [[true 0 predicted 0, ...], ...],
     "per_class": [{"class", "precision", "recall", "f1", "support"}, ...],
     "accuracy": 0.97, "macro_f1": 0.97, "samples": [misclassified inputs]}

Rows are the true classes, columns the predicted ones. A figure with no
predictions to divide by (precision of a class never predicted) is None.
``samples`` holds a few misclassified inputs when they are images (the GUI
shows them), else it is empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

MAX_SAMPLES = 8
MAX_SAMPLE_SIDE = 64  # larger images are not copied into the file
IMAGE_CHANNELS = (1, 3)


def predictions(
    scores: np.ndarray, targets: np.ndarray, loss: str, logits: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """(true classes, predicted classes, number of classes), one entry per prediction.

    cross_entropy: the class with the highest score (the last axis holds the classes);
    binary_cross_entropy: each output is a yes/no prediction (a logit above 0, a probability above 0.5).
    """
    if loss == "cross_entropy":
        classes = scores.shape[-1]
        return targets.reshape(-1).astype(np.int64), scores.reshape(-1, classes).argmax(axis=-1), classes
    threshold = 0.0 if logits else 0.5
    return (targets.reshape(-1) > 0.5).astype(np.int64), (scores.reshape(-1) > threshold).astype(np.int64), 2


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else round(float(numerator) / float(denominator), 6)


def per_class(matrix: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for index, name in enumerate(names):
        right = matrix[index, index]
        precision = _ratio(right, matrix[:, index].sum())
        recall = _ratio(right, matrix[index].sum())
        f1 = None
        if precision is not None and recall is not None:
            f1 = 0.0 if precision + recall == 0 else round(2 * precision * recall / (precision + recall), 6)
        rows.append(
            {
                "class": name,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(matrix[index].sum()),
            }
        )
    return rows


def confusion_report(
    scores: np.ndarray,
    targets: np.ndarray,
    loss: str,
    logits: bool,
    class_names: list[str] | None = None,
    inputs: np.ndarray | None = None,
) -> dict[str, Any]:
    """The report for the validation ``scores`` against ``targets`` (see the module docstring)."""
    true, predicted, count = predictions(
        np.asarray(scores, dtype=np.float64), np.asarray(targets), loss, logits
    )
    count = max(count, int(true.max(initial=-1)) + 1)  # a label the output cannot score still has a row
    matrix = np.bincount(true * count + predicted, minlength=count * count).reshape(count, count)
    names = list(class_names) if class_names and len(class_names) == count else [str(i) for i in range(count)]
    rows = per_class(matrix, names)
    f1s = [row["f1"] for row in rows if row["f1"] is not None and row["support"]]
    one_per_sample = len(true) == len(scores)
    return {
        "split": "validation",
        "classes": names,
        "matrix": matrix.tolist(),
        "per_class": rows,
        "accuracy": _ratio(np.trace(matrix), matrix.sum()),
        "macro_f1": round(float(np.mean(f1s)), 6) if f1s else None,
        "samples": _samples(inputs, true, predicted, names) if one_per_sample else [],
    }


def _is_image(inputs: np.ndarray | None) -> bool:
    """(N, H, W) or (N, H, W, 1 or 3) arrays of small images."""
    if inputs is None or inputs.ndim not in (3, 4) or not np.issubdtype(inputs.dtype, np.floating):
        return False
    if inputs.ndim == 4 and inputs.shape[-1] not in IMAGE_CHANNELS:
        return False
    return 2 <= min(inputs.shape[1:3]) and max(inputs.shape[1:3]) <= MAX_SAMPLE_SIDE


def _samples(
    inputs: np.ndarray | None, true: np.ndarray, predicted: np.ndarray, names: list[str]
) -> list[dict]:
    if not _is_image(inputs):
        return []
    wrong = np.flatnonzero(true != predicted)[:MAX_SAMPLES]
    samples = []
    for index in wrong.tolist():
        image = inputs[index]
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        samples.append(
            {
                "index": index,
                "true": names[true[index]],
                "predicted": names[predicted[index]],
                "image": np.round(image.astype(np.float64), 4).tolist(),
            }
        )
    return samples


def write_report(path: Path, report: dict[str, Any]) -> None:
    """One key a line, each value compact (a matrix row of a 100-class run stays one line)."""
    lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in report.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


def read_report(path: str | Path) -> dict[str, Any] | None:
    """A run's confusion_matrix.json, or None when it is missing or unreadable."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or not isinstance(report.get("matrix"), list):
        return None
    return report
