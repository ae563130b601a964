"""Export small PyTorch CNNs in torchvision's shapes to ONNX test fixtures.

Run by hand (needs torch; the tests only read the committed .onnx files and
need no torch)::

    python tests/data/make_onnx_fixtures.py

Each module is a few-channel miniature of a torchvision architecture, built
with seeded weights in eval mode (batch-norm statistics randomised so that
folding them is visible), and exported twice:

- ``NAME.ts.onnx``: the TorchScript exporter, ``torch.onnx.export(...,
  dynamo=False)``, some with a dynamic batch axis so that the graph keeps the
  exporter's shape arithmetic (Shape, Gather, Unsqueeze, Concat, Reshape);
- ``NAME.dynamo.onnx``: the default dynamo exporter (its default opset, 20
  with torch 2.13, for half of them; opset 18 for the others).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent / "onnx"


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class LeNet(nn.Module):
    """LeNet-5: conv, tanh, avg pool twice, then view(N, -1) and three Linear."""

    input_shape = (1, 1, 32, 32)

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 5)
        self.s2 = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(4, 6, 5)
        self.s4 = nn.AvgPool2d(2)
        self.f5 = nn.Linear(6 * 5 * 5, 20)
        self.f6 = nn.Linear(20, 12)
        self.out = nn.Linear(12, 10)

    def forward(self, x):
        x = self.s2(torch.tanh(self.c1(x)))
        x = self.s4(torch.tanh(self.c3(x)))
        x = x.view(x.size(0), -1)  # the exporters' shape arithmetic
        x = torch.tanh(self.f5(x))
        x = torch.tanh(self.f6(x))
        return torch.softmax(self.out(x), dim=1)


class AlexNetLRN(nn.Module):
    """AlexNet (the paper's, with LRN): 11x11/4 conv, LRN, overlapping 3x3/2 max pools."""

    input_shape = (1, 3, 71, 71)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(6, 8, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        # (1, 1), not torchvision's (6, 6): after LRN the TorchScript exporter
        # no longer knows the sizes that an adaptive pool to 6x6 needs
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(8, 16), nn.ReLU(inplace=True), nn.Linear(16, 10)
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class VGGish(nn.Module):
    """VGG with batch norm: 3x3 pad-1 convs, 2x2 max pools, ceil-mode last pool."""

    input_shape = (1, 3, 37, 41)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in (4, "M", 8, 8, "M", 8, "C"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            elif v == "C":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), _bn(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(8, 5)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicConv(nn.Module):
    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """GoogLeNet's inception module (torchvision's: 3x3 in the 5x5 branch)."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> None:
        super().__init__()
        self.b1 = BasicConv(cin, c1, kernel_size=1)
        self.b2 = nn.Sequential(
            BasicConv(cin, c3r, kernel_size=1), BasicConv(c3r, c3, kernel_size=3, padding=1)
        )
        self.b3 = nn.Sequential(
            BasicConv(cin, c5r, kernel_size=1), BasicConv(c5r, c5, kernel_size=3, padding=1)
        )
        self.b4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv(cin, pp, kernel_size=1)
        )

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogLeNetish(nn.Module):
    input_shape = (1, 3, 45, 45)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = BasicConv(3, 6, kernel_size=7, stride=2, padding=3)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inc = Inception(6, 2, 3, 4, 2, 2, 2)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inc2 = Inception(10, 3, 2, 3, 2, 3, 3)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(12, 7)

    def forward(self, x):
        x = self.pool2(self.inc(self.pool1(self.conv1(x))))
        x = self.avgpool(self.inc2(x))
        return self.fc(self.dropout(torch.flatten(x, 1)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)


class ResNetish(nn.Module):
    """ResNet's stem (7x7/2 conv, 3x3/2 max pool) and basic blocks, one with a downsample."""

    input_shape = (1, 3, 49, 43)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, 2, 3, bias=False)
        self.bn1 = _bn(4)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(4, 4)
        self.layer2 = BasicBlock(4, 8, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, 6)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Fire(nn.Module):
    def __init__(self, cin: int, s: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, s, 1)
        self.e1 = nn.Conv2d(s, e1, 1)
        self.e3 = nn.Conv2d(s, e3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)


class SqueezeNetish(nn.Module):
    """SqueezeNet 1.1: fire modules, ceil-mode pools, a 1x1 conv classifier, global pool."""

    input_shape = (1, 3, 47, 47)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(8, 2, 4, 4),
            Fire(8, 2, 4, 4),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(8, 3, 5, 5),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Conv2d(10, 6, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def _dw_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        _bn(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        _bn(cout),
        nn.ReLU(inplace=True),
    )


class MobileNetV1ish(nn.Module):
    """MobileNet v1: depthwise 3x3 + pointwise 1x1 pairs, strided, then pool and Linear."""

    input_shape = (1, 3, 40, 36)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), _bn(4), nn.ReLU())
        self.blocks = nn.Sequential(_dw_block(4, 8, 1), _dw_block(8, 8, 2), _dw_block(8, 12, 2))
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            _bn(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            _bn(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            _bn(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2ish(nn.Module):
    """MobileNetV2: ReLU6, inverted residuals (one with the skip), then a dropout classifier."""

    input_shape = (1, 3, 33, 39)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, 2, 1, bias=False),
            _bn(4),
            nn.ReLU6(inplace=True),
            InvertedResidual(4, 4, 1, 3),
            InvertedResidual(4, 6, 2, 3),
            InvertedResidual(6, 6, 1, 2),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(6, 4))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


MODELS = {
    "lenet": LeNet,
    "alexnet_lrn": AlexNetLRN,
    "vggish": VGGish,
    "googlenetish": GoogLeNetish,
    "resnetish": ResNetish,
    "squeezenetish": SqueezeNetish,
    "mobilenetv1ish": MobileNetV1ish,
    "mobilenetv2ish": MobileNetV2ish,
}


#: exported with a dynamic batch axis (the TorchScript exporter then keeps its
#: shape arithmetic in the graph; adaptive pooling to a size above 1 needs
#: static sizes, so not AlexNet)
DYNAMIC_BATCH = ("lenet", "resnetish", "mobilenetv1ish", "squeezenetish")


def build(name: str) -> nn.Module:
    torch.manual_seed(sorted(MODELS).index(name))
    model = MODELS[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # stats that make folding visible
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def export(name: str, out_dir: Path = HERE) -> list[Path]:
    model = build(name)
    x = torch.randn(*model.input_shape, generator=torch.Generator().manual_seed(0))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    ts = out_dir / f"{name}.ts.onnx"
    torch.onnx.export(
        model, (x,), str(ts), dynamo=False, opset_version=11 if name == "lenet" else 13,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}} if name in DYNAMIC_BATCH else None,
    )  # fmt: skip
    written.append(ts)
    dyn = out_dir / f"{name}.dynamo.onnx"
    try:
        # the default opset for half of them, opset 18 (ReduceMean's axes as an input) for the rest
        opset = 18 if sorted(MODELS).index(name) % 2 else None
        program = torch.onnx.export(
            model, (x,), dynamo=True, input_names=["input"], opset_version=opset
        )
        program.save(str(dyn), external_data=False)
        written.append(dyn)
    except Exception as exc:  # noqa: BLE001  (report and go on: onnxscript may be missing)
        print(f"{name}: dynamo export failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return written


def main() -> None:
    total = 0
    for name in MODELS:
        for path in export(name):
            total += path.stat().st_size
            print(f"{path.name}: {path.stat().st_size:,} bytes")
    print(f"total {total:,} bytes")


if __name__ == "__main__":
    main()
