"""`convtool visualize --net model.onnx` and `convtool summary model.onnx` through the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convtool.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "samples" / "nets" / "tiny_cnn.onnx"
DATA = Path(__file__).resolve().parent / "data" / "onnx"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files(d: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(r, n), d) for r, _, ns in os.walk(d) for n in ns)


def one_line(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.stderr, res.stdout)
    err = res.stderr
    assert err.startswith("convtool: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture()
def photo(tmp_path, astronaut):
    path = tmp_path / "astro.png"
    Image.fromarray(astronaut[::6, ::6].astype(np.uint8)).save(path)  # 86x86 RGB
    return path


def test_visualize_tiny_cnn_draws_every_node(tmp_path, photo):
    out = tmp_path / "maps"
    res = run("visualize", photo, "--net", TINY, "-o", f"{out}/")
    assert res.exit_code == 0, res.stderr
    names = [n.name for n in onnx.load(str(TINY)).graph.node]
    sheets = sorted(p.name for p in out.glob("[0-9]*.png"))
    assert len(sheets) == len(names) and (out / "overview.png").is_file()
    assert sheets[0] == "01_conv1.png" and sheets[-1] == f"{len(names):02d}_probs.png"
    with Image.open(out / "01_conv1.png") as im:
        assert im.size[0] > 200 and im.size[1] > 200


def test_visualize_until_stops_at_a_node(tmp_path, photo):
    out = tmp_path / "cut"
    res = run("visualize", photo, "--net", TINY, "--until", "relu2", "-o", f"{out}/")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.glob("[0-9]*.png"))[-1] == "07_relu2.png"
    assert len(list(out.glob("[0-9]*.png"))) == 7
    res = run("visualize", photo, "--net", TINY, "--until", "nope", "-o", f"{tmp_path / 'x'}/")
    one_line(res, "no node named 'nope'")
    assert not (tmp_path / "x").exists()


def test_until_skips_unsupported_operators_after_it(tmp_path, photo):
    model = onnx.load(str(TINY))
    model.graph.node.append(helper.make_node("Hardmax", ["probs"], ["erf"], name="odd"))
    model.graph.output[0].name = "erf"
    path = tmp_path / "odd.onnx"
    onnx.save(model, path)
    one_line(run("visualize", photo, "--net", path, "-o", f"{tmp_path / 'a'}/"),
             "node odd: operator Hardmax is not supported", "Conv")  # fmt: skip
    res = run("visualize", photo, "--net", path, "--until", "fc", "-o", f"{tmp_path / 'b'}/")
    assert res.exit_code == 0, res.stderr
    assert not (tmp_path / "a").exists()


def test_summary_json_counts_parameters_as_pytorch(tmp_path):
    res = run("summary", TINY, "--input", "64x48x3", "--json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    model = onnx.load(str(TINY))
    learnable = sum(
        t.dims[0] if len(t.dims) == 1 else int(np.prod(t.dims))
        for t in model.graph.initializer
        if not t.name.endswith(("running_mean", "running_var"))
    )
    assert sum(r["params"] for r in rows) == learnable
    by = {r["layer"]: r for r in rows}
    assert by["conv1"]["output"] == [8, 64, 48] and by["conv1"]["rf"] == 3
    assert by["pool2"]["output"] == [16, 16, 12]
    assert by["probs"]["output"] == [10]
    until = json.loads(run("summary", TINY, "--input", "64x48x3", "--json",
                           "--until", "pool1").stdout)  # fmt: skip
    assert [r["layer"] for r in until][-1] == "pool1" and len(until) == 5


def test_summary_of_a_static_exported_model():
    res = run("summary", DATA / "resnetish.ts.onnx", "--json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert rows[0]["output"] == [3, 49, 43] and rows[-1]["output"] == [6]


# ------------------------------------------------------------------ bad input


def _relu_model(opset: int, shape) -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


@pytest.fixture()
def bad(tmp_path):
    cases = {
        "binary.onnx": (bytes(range(256)) * 4, "not an ONNX model"),
        "truncated.onnx": (TINY.read_bytes()[:5000], "not an ONNX model"),
        "empty.onnx": (b"", "not an ONNX model"),
        "tensor.onnx": (
            numpy_helper.from_array(np.ones(4, np.float32)).SerializeToString(),
            "not an ONNX model",
        ),
        "old.onnx": (_relu_model(9, [1, 1, 8, 8]), "opset 9 is older than 11"),
    }
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path, {name: msg for name, (_, msg) in cases.items()}


def test_bad_models_exit_2_in_one_line_and_write_nothing(bad, photo):
    tmp, cases = bad
    for name, msg in cases.items():
        out = tmp / f"out_{name}"
        one_line(run("visualize", photo, "--net", tmp / name, "-o", f"{out}/"), name, msg)
        assert not out.exists()
        one_line(run("summary", tmp / name, "--input", "8x8x1"), name, msg)


def test_dynamic_input_without_a_size():
    one_line(run("summary", TINY), "tiny_cnn.onnx", "dynamic size", "--input")


def test_unsupported_operator_names_node_and_supported_list(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"], name="r"),
         helper.make_node("Hardmax", ["a"], ["y"], name="hm7")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.save(model, tmp_path / "hs.onnx")
    err = one_line(run("summary", tmp_path / "hs.onnx"), "node hm7", "Hardmax",
                   "supported: ", "BatchNormalization", "MaxPool")  # fmt: skip
    assert "hs.onnx" in err


def test_without_the_onnx_package_the_cli_says_what_to_install(monkeypatch, photo, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    one_line(run("summary", TINY, "--input", "32x32x3"), "pip install 'convtool[onnx]'")
    out = tmp_path / "none"
    one_line(run("visualize", photo, "--net", TINY, "-o", f"{out}/"), "pip install")
    assert not out.exists()


def test_summary_shows_resnet18_parameter_count(tmp_path):
    from test_onnx_models import _resnet18

    path = tmp_path / "resnet18.onnx"
    onnx.save(_resnet18(), path)
    res = run("summary", path)
    assert res.exit_code == 0, res.stderr
    assert "11,689,512" in res.stdout and "64×112×112" in res.stdout


def test_summary_input_without_channels_takes_the_models():
    res = run("summary", TINY, "--input", "40x30", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)[0]["output"] == [3, 40, 30]
