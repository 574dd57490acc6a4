"""Blocks: named groups of layers in the graph and the project file, and the blocks importers make.

Blocks are a view of the model: they never change the generated code or the analysis.
"""

from __future__ import annotations

import json

import pytest

from codegen import generate
from studio.analysis import analyze
from studio.graph import MAX_NODES, GraphError
from studio.interop.builder import name_blocks
from studio.project import ProjectError, dumps_project, loads_project, project_to_dict
from tests.graph_builders import chain


def small_project():
    return chain(
        (8, 8, 1),
        ("Conv2D", {"filters": 4, "kernel_size": 3}),
        ("Activation", {"activation": "relu"}),
        ("Conv2D", {"filters": 4, "kernel_size": 3}),
        ("Activation", {"activation": "relu"}),
        ("Flatten", {}),
        ("Dense", {"units": 3}),
    )


def ids(graph, *names):
    return [graph.find(name).id for name in names]


# ----- the graph keeps blocks consistent ----------------------------------------------------


def test_a_block_groups_layers_and_follows_deletions():
    graph = small_project().graph
    events = []
    graph.events.blocks_changed.connect(events.append)
    members = ids(graph, "conv2d_0", "activation_1")
    block = graph.add_block("stem", members, collapsed=True)
    assert graph.block_of(members[0]) is block and block.collapsed
    assert graph.block_of(graph.find("dense_5").id) is None
    graph.rename_block("stem", "first")
    assert [b.name for b in graph.blocks] == ["first"] and graph.block_of(members[1]).name == "first"
    graph.rename_node(members[0], "renamed")  # ids, not names: a renamed layer stays in its block
    assert graph.block("first").members == members
    graph.remove_node(members[0])
    assert graph.block("first").members == [members[1]]
    graph.remove_node(members[1])  # an empty block disappears
    assert graph.blocks == []
    assert len(events) == 4


@pytest.mark.parametrize(
    "name, members, message",
    [
        ("b", ["nope"], "no node with id 'nope'"),
        ("b", [], "at least one layer"),
        ("b", ["n2", "n2"], "only once"),
        ("", ["n2"], "non-empty"),
        ("x" * 101, ["n2"], "at most 100 characters"),
        ("a\nb", ["n2"], "control characters"),
        ("taken", ["n4"], "already a block named"),
        ("b", ["n3"], "already in block 'taken'"),
    ],
)
def test_invalid_blocks_are_refused_by_name(name, members, message):
    graph = small_project().graph
    graph.add_block("taken", ["n3"])
    with pytest.raises(GraphError, match=message):
        graph.add_block(name, members)
    assert [block.name for block in graph.blocks] == ["taken"]


def test_blocks_change_neither_the_code_nor_the_analysis():
    project = small_project()
    before = {framework: generate(project, framework).source for framework in ("keras", "pytorch")}
    analysis = analyze(project.graph)
    graph = project.graph
    graph.add_block(
        "features", ids(graph, "conv2d_0", "activation_1", "conv2d_2", "activation_3"), collapsed=True
    )
    graph.add_block("head", ids(graph, "flatten_4", "dense_5"))
    reopened = loads_project(dumps_project(project))
    for framework, source in before.items():
        assert generate(project, framework).source == source
        assert generate(reopened, framework).source == source
    after = analyze(reopened.graph)
    assert after.shapes == analysis.shapes and after.problems == analysis.problems


# ----- the project file -------------------------------------------------------------------


def test_blocks_round_trip_through_the_file_and_older_files_still_load():
    project = small_project()
    plain = project_to_dict(project)
    assert "blocks" not in plain  # a project without blocks is written as before
    assert loads_project(json.dumps(plain)).graph.blocks == []
    graph = project.graph
    graph.add_block("features", ids(graph, "conv2d_0", "activation_1"), collapsed=True)
    graph.add_block("head", ids(graph, "dense_5"))
    data = project_to_dict(project)
    assert data["blocks"] == [
        {"name": "features", "members": ids(graph, "conv2d_0", "activation_1"), "collapsed": True},
        {"name": "head", "members": ids(graph, "dense_5"), "collapsed": False},
    ]
    reopened = loads_project(dumps_project(project))
    assert reopened.graph.blocks == graph.blocks
    assert dumps_project(reopened) == dumps_project(project)


@pytest.mark.parametrize(
    "blocks, message",
    [
        ({"name": "b"}, r'"blocks" must be a list'),
        ([["n2"]], r"blocks\[0\]: expected an object"),
        ([{"members": ["n2"]}], 'missing the required key "name"'),
        ([{"name": "b", "members": ["n2"], "color": "red"}], 'unknown key "color"'),
        ([{"name": 7, "members": ["n2"]}], r"blocks\[0\].name: expected a string"),
        ([{"name": "b", "members": "n2"}], "expected a list of node ids"),
        ([{"name": "b", "members": [2]}], "expected a list of node ids"),
        ([{"name": "b", "members": ["n99"]}], "no node with id 'n99'"),
        ([{"name": "b", "members": ["n2", "n2"]}], "only once"),
        ([{"name": "b", "members": []}], "at least one layer"),
        ([{"name": "", "members": ["n2"]}], "non-empty"),
        ([{"name": "\x00", "members": ["n2"]}], "control characters"),
        ([{"name": "b", "members": ["n2"], "collapsed": "yes"}], "expected true or false"),
        ([{"name": "b", "members": ["n2"]}, {"name": "b", "members": ["n3"]}], "already a block named 'b'"),
        ([{"name": "a", "members": ["n2"]}, {"name": "b", "members": ["n2"]}], "already in block 'a'"),
        ([{"name": f"b{i}", "members": ["n2"]} for i in range(MAX_NODES + 1)], "at most 100,000"),
    ],
)
def test_hostile_blocks_give_one_clear_error(blocks, message):
    data = project_to_dict(small_project())
    data["blocks"] = blocks
    with pytest.raises(ProjectError, match=message):
        loads_project(json.dumps(data))


def test_a_huge_member_list_is_refused_before_it_is_walked():
    data = project_to_dict(small_project())
    data["blocks"] = [{"name": "b", "members": ["n2"] * (MAX_NODES + 1)}]
    with pytest.raises(ProjectError, match="at most 100,000 layers"):
        loads_project(json.dumps(data))


# ----- blocks from the structure of imported names ------------------------------------------


def test_blocks_follow_module_paths_and_name_prefixes():
    torch_names = ["x", "conv1", "bn1", "relu", "maxpool"]
    for stage, blocks in ((1, 3), (2, 4)):
        for index in range(blocks):
            torch_names += [
                f"layer{stage}.{index}.{part}" for part in ("conv1", "bn1", "relu", "conv2", "bn2")
            ]
            torch_names += [f"layer{stage}.{index}.relu_1", f"layer{stage}.{index}.add"]
        torch_names += [f"layer{stage}.0.downsample.0", f"layer{stage}.0.downsample.1"]
    torch_names += ["avgpool", "flatten", "fc"]
    blocks = name_blocks(torch_names)
    assert list(blocks) == [f"layer1.{i}" for i in range(3)] + [f"layer2.{i}" for i in range(4)]
    assert blocks["layer1.0"][-2:] == ["layer1.0.downsample.0", "layer1.0.downsample.1"]
    assert len(blocks["layer2.3"]) == 7

    keras_names = ["input_layer", "conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu"]
    for block in (1, 2, 3):  # keras.applications.ResNet50's bottlenecks
        keras_names += [f"conv2_block{block}_{i}_{k}" for i in (1, 2, 3) for k in ("conv", "bn", "relu")]
        keras_names += [f"conv2_block{block}_add", f"conv2_block{block}_out"]
    keras_names += ["conv2_block1_0_conv", "conv2_block1_0_bn", "avg_pool", "predictions"]
    blocks = name_blocks(keras_names)
    assert list(blocks) == ["conv2_block1", "conv2_block2", "conv2_block3"]
    assert [len(members) for members in blocks.values()] == [13, 11, 11]
    # A small model's stages are blocks of their own when they are small enough to read as one.
    assert list(name_blocks(keras_names[:5] + keras_names[5:16])) == ["conv1", "conv2"]

    parts = ("q", "k", "v", "scores", "softmax", "out", "norm", "ffn")
    onnx_names = [f"/encoder/layer.{i}/{part}/MatMul" for i in range(4) for part in parts]
    assert list(name_blocks(onnx_names + ["/head/Gemm"])) == [f"/encoder/layer.{i}" for i in range(4)]
    assert name_blocks(["dense", "dense_1", "dense_2"]) == {}  # no structure, no blocks


# ----- importers make blocks from the model's own structure ----------------------------------


def test_a_torch_model_imports_with_a_block_per_submodule():
    import torch
    from torch import nn

    from studio.interop.torch_import import import_torch_model

    class Bottleneck(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4)
            self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv3, self.bn3 = nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8)
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            return self.relu(self.bn3(self.conv3(y)) + x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.stage = nn.Sequential(Bottleneck(), Bottleneck(), Bottleneck())
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.stage(self.stem(x)), 1), 1))

    imported = import_torch_model(Net(), [(3, 8, 8)], with_weights=False)
    graph = imported.project.graph
    assert [block.name for block in graph.blocks] == ["stage.0", "stage.1", "stage.2"]
    for block in graph.blocks:
        names = [graph.node(node_id).name for node_id in block.members]
        assert len(names) == 10 and all(name.startswith(block.name + ".") for name in names)
        assert not block.collapsed  # a small model opens expanded
    bare = loads_project(dumps_project(imported.project))
    for block in list(bare.graph.blocks):
        bare.graph.remove_block(block.name)
    for framework in ("keras", "pytorch"):
        assert generate(imported.project, framework).source == generate(bare, framework).source


@pytest.mark.slow
def test_keras_resnet50_imports_as_sixteen_collapsed_blocks(tmp_path):
    import keras

    from studio.interop import import_model

    path = tmp_path / "resnet50.keras"
    keras.applications.ResNet50(weights=None).save(path)
    imported = import_model(path, with_weights=False)
    graph = imported.project.graph
    names = [
        f"conv{stage}_block{index}"
        for stage, count in ((2, 3), (3, 4), (4, 6), (5, 3))
        for index in range(1, count + 1)
    ]
    assert [block.name for block in graph.blocks] == names
    assert all(block.collapsed for block in graph.blocks)
    assert all(10 <= len(block.members) <= 12 for block in graph.blocks)
    for block in graph.blocks:
        assert all(graph.node(node_id).name.startswith(block.name + "_") for node_id in block.members)


@pytest.mark.slow
def test_an_onnx_model_imports_with_blocks_from_its_node_names(tmp_path):
    import numpy as np

    from studio.interop import import_model
    from tests.test_interop_onnx import export_torch
    from tests.test_interop_torch import RESNET_SOURCE

    namespace: dict = {}
    exec(compile(RESNET_SOURCE, "resnet.py", "exec"), namespace)  # the tests' own source
    path = tmp_path / "resnet18.onnx"
    export_torch(namespace["resnet18"]().eval(), np.zeros((1, 3, 32, 32), "float32"), path)
    graph = import_model(path, with_weights=False).project.graph
    assert [block.name for block in graph.blocks] == ["layer1", "layer2", "layer3", "layer4"]
    assert not any(block.collapsed for block in graph.blocks)  # 55 layers: it opens expanded
