"""Everything a run needs before training, checked before any framework is imported.

The project is read, its code generated in both frameworks (what is trained
is what is exported), and the dataset loaded and fitted to the model's input
and output shapes, so that a mismatch is reported before the first batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen import CodegenError, GeneratedCode, generate
from codegen.plan import LayerPlan, ModelPlan
from studio.catalog.base import format_shape
from studio.datasets import Dataset, DatasetError, fit_to_model, load_dataset
from studio.project import Project, ProjectError, load_project, project_from_dict
from studio.training.config import RunConfig
from studio.training.errors import TrainingError


@dataclass
class Session:
    config: RunConfig
    project: Project
    code: dict[str, GeneratedCode]  # by framework
    data: Dataset  # fitted: x shaped for the input (channels-last), y for the loss
    logits: bool  # the model ends without softmax/sigmoid, so its output is logits

    @property
    def plan(self) -> ModelPlan:
        return self.code["keras"].plan

    @property
    def input(self) -> LayerPlan:
        return self.plan.inputs[0]

    @property
    def output(self) -> LayerPlan:
        return self.plan.outputs[0]

    @property
    def classification(self) -> bool:
        return self.config.classification


def prepare_session(config: RunConfig) -> Session:
    project = read_project(config)
    code = generate_code(project)
    plan = code["keras"].plan
    if len(plan.inputs) != 1 or len(plan.outputs) != 1:
        raise TrainingError(
            f"training needs a model with one input and one output; this one has {len(plan.inputs)} "
            f"input(s) and {len(plan.outputs)} output(s)",
            reason="project",
        )
    data = fit_dataset(config, load(config), plan)
    return Session(config, project, code, data, logits=model_outputs_logits(plan, config.loss))


def read_project(config: RunConfig) -> Project:
    """The project, with its training settings replaced by the run's (so the saved code matches the run)."""
    try:
        if isinstance(config.project, dict):
            project = project_from_dict(config.project)
        else:
            project = load_project(config.project)
    except ProjectError as error:
        raise TrainingError(str(error), reason="project") from None
    project.training = config.settings()
    return project


def generate_code(project: Project) -> dict[str, GeneratedCode]:
    try:
        keras_code = generate(project, "keras")
        torch_code = generate(project, "pytorch", keras_code.plan.analysis)
    except CodegenError as error:
        raise TrainingError(str(error), reason="project") from None
    return {"keras": keras_code, "pytorch": torch_code}


def load(config: RunConfig) -> Dataset:
    base_dir = config.base_dir or (
        str(Path(config.project).parent) if isinstance(config.project, str) else None
    )
    try:
        return load_dataset(
            config.dataset, validation_split=config.validation_split, seed=config.seed, base_dir=base_dir
        )
    except DatasetError as error:
        raise TrainingError(f"the dataset cannot be loaded: {error}", reason="dataset") from None


def fit_dataset(config: RunConfig, dataset: Dataset, plan: ModelPlan) -> Dataset:
    """The dataset shaped for the model; raises TrainingError naming both shapes when it does not fit."""
    layer, output = plan.inputs[0], plan.outputs[0]
    try:
        if config.target == "inputs":
            return _fit_reconstruction(config, dataset, layer, output)
        return fit_to_model(
            dataset,
            layer.shape,
            output.shape,
            config.loss,
            input_name=layer.node.name,
            input_dtype=layer.params["dtype"],
        )
    except DatasetError as error:
        raise TrainingError(
            f"the dataset does not fit the model (input {format_shape(layer.shape)}, output "
            f"{format_shape(output.shape)}): {error}",
            reason="dataset",
        ) from None


def _fit_reconstruction(config: RunConfig, dataset: Dataset, layer: LayerPlan, output: LayerPlan) -> Dataset:
    """target "inputs": the model learns to reproduce its input, so y is x shaped like the output."""
    as_targets = dataclasses.replace(
        dataset,
        y_train=dataset.x_train.astype(np.float32),
        y_val=dataset.x_val.astype(np.float32),
        task="regression",
        num_classes=None,
        class_names=None,
    )
    # Fitted as regression so that only the sizes must agree; the run's own loss is used for training.
    return fit_to_model(
        as_targets,
        layer.shape,
        output.shape,
        "mse",
        input_name=layer.node.name,
        input_dtype=layer.params["dtype"],
    )


def model_outputs_logits(plan: ModelPlan, loss: str) -> bool:
    """As the generated programs decide: logits unless the output layer ends in softmax (or sigmoid)."""
    final = "softmax" if loss == "cross_entropy" else "sigmoid"
    return plan.outputs[0].params.get("activation") != final
