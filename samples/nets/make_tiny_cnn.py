"""Build samples/nets/tiny_cnn.onnx with the onnx helper API (no download, no torch).

    python samples/nets/make_tiny_cnn.py

A small residual CNN on RGB images of any size (the input's height and width
are dynamic): conv/batch-norm/ReLU, max pool, a residual block whose Add
joins two paths, a strided max pool, a 1x1 conv, global average pool, flatten,
a fully connected layer (Gemm) and softmax over 10 classes. The first
convolution holds recognisable filters (Sobel, Laplacian, blur, colour
opponents) so that its maps mean something; the rest are seeded He-normal
weights. It is untrained: the class probabilities are arbitrary.

Run it::

    convtool visualize samples/astronaut.png --net samples/nets/tiny_cnn.onnx -o maps/
    convtool summary samples/nets/tiny_cnn.onnx --input 224x224x3
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent / "tiny_cnn.onnx"


def first_filters() -> np.ndarray:
    """(8, 3, 3, 3): edge and blob detectors on luminance, two colour opponents."""
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    laplace = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
    blur = np.full((3, 3), 1 / 9, np.float32)
    diag = np.array([[2, 1, 0], [1, 0, -1], [0, -1, -2]], np.float32)
    gray = np.array([0.299, 0.587, 0.114], np.float32)
    w = np.zeros((8, 3, 3, 3), np.float32)
    for i, k in enumerate((sobel_x, sobel_x.T, laplace, diag, diag[:, ::-1], blur)):
        w[i] = gray[:, None, None] * k
    w[6] = np.array([1, -1, 0], np.float32)[:, None, None] * blur  # red - green
    w[7] = np.array([-0.5, -0.5, 1], np.float32)[:, None, None] * blur  # blue - yellow
    return w  # for pixels in 0..1, as convtool visualize gives an ONNX model by default


def build(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def he(m: int, c: int, k: int) -> np.ndarray:
        return rng.standard_normal((m, c, k, k)).astype(np.float32) * np.sqrt(2.0 / (c * k * k))

    def conv(name: str, x: str, w: np.ndarray, stride: int = 1, bias: bool = True) -> str:
        k = w.shape[-1]
        ins = [x, const(f"{name}.weight", w)]
        if bias:
            ins.append(const(f"{name}.bias", rng.normal(0, 0.05, w.shape[0])))
        nodes.append(helper.make_node(
            "Conv", ins, [name], name=name, kernel_shape=[k, k], pads=[k // 2] * 4,
            strides=[stride, stride],
        ))  # fmt: skip
        return name

    def bn(name: str, x: str, c: int) -> str:
        ins = [
            x,
            const(f"{name}.weight", rng.uniform(0.8, 1.2, c)),
            const(f"{name}.bias", rng.uniform(-0.1, 0.1, c)),
            const(f"{name}.running_mean", rng.uniform(-0.1, 0.1, c)),
            const(f"{name}.running_var", rng.uniform(0.5, 1.5, c)),
        ]
        nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=1e-5))
        return name

    def op(kind: str, name: str, *ins: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, list(ins), [name], name=name, **attrs))
        return name

    x = conv("conv1", "image", first_filters(), bias=False)
    x = op("Relu", "relu1", bn("bn1", x, 8))
    x = op("MaxPool", "pool1", x, kernel_shape=[2, 2], strides=[2, 2])
    x = op("Relu", "relu2", bn("bn2", conv("conv2", x, he(16, 8, 3)), 16))
    y = op("Relu", "relu3", bn("bn3", conv("conv3", x, he(16, 16, 3)), 16))
    y = bn("bn4", conv("conv4", y, he(16, 16, 3)), 16)
    x = op("Relu", "relu4", op("Add", "residual", x, y))
    x = op("MaxPool", "pool2", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = op("Relu", "relu5", conv("conv5", x, he(32, 16, 1)))
    x = op("GlobalAveragePool", "gap", x)
    x = op("Flatten", "flatten", x, axis=1)
    w_fc = rng.standard_normal((10, 32)).astype(np.float32) * np.sqrt(1.0 / 32)
    x = op("Gemm", "fc", x, const("fc.weight", w_fc), const("fc.bias", np.zeros(10)), transB=1)
    op("Softmax", "probs", x, axis=1)

    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="convtool samples"
    )
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    onnx.save(build(), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
