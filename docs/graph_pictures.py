"""Draw the README's pictures of the sample graphs in samples/nets/ (run by hand).

    python docs/graph_pictures.py

For each net: the image normalised as ImageNet models expect (what
``visualize --mean imagenet --std imagenet`` does), every node run by
``convtool.feature_maps``, and one small overview sheet of the nodes that show
the graph's shape (the branches and the join), each row its most active maps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from convtool.grid import most_active, overview
from convtool.network import feature_maps, load_net

ROOT = Path(__file__).resolve().parent.parent
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

#: net -> (sample image, side the image is reduced to, nodes drawn)
PICTURES = {
    "residual": ("chelsea.png", 224, ["block_in", "relu1", "bn2", "sum", "out"]),
    "inception": ("astronaut.png", 224, ["stem_relu", "b1", "b2", "b3", "b4", "mixed"]),
    "fire": (
        "coins.png", 224, ["stem_pool", "squeeze_relu", "expand1x1_relu", "expand3x3_relu", "fire"]
    ),
    "inverted_residual": (
        "chelsea.png", 224, ["block_in", "expand_relu6", "depthwise_relu6", "project_bn", "sum"]
    ),
    "classifier": ("chelsea.png", 32, ["conv1", "pool2", "flatten", "fc1", "logits", "probs"]),
}  # fmt: skip


def picture(net_name: str, image: str, side: int, nodes: list[str]) -> Path:
    with Image.open(ROOT / "samples" / image) as im:
        im = im.convert("RGB")
        if net_name == "classifier":  # a fixed 32x32 input: centre crop, then resize
            s = min(im.size)
            left, top = (im.size[0] - s) // 2, (im.size[1] - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((side, side), Image.BOX)
        else:
            im.thumbnail((side * 2, side), Image.BOX)
        rgb = np.asarray(im, dtype=np.float32)
    x = ((rgb / 255 - MEAN) / STD).astype(np.float32)
    net = load_net(ROOT / "samples" / "nets" / f"{net_name}.toml")
    net = dataclasses.replace(net, input_scale=1.0)  # normalised above
    maps = {layer.name: (layer, out) for layer, out in feature_maps(x, net)}
    rows = []
    for name in nodes:
        layer, out = maps[name]
        if out.ndim == 1:
            shown = [out]
        else:
            shown = [out[i] for i in most_active(out, min(6, len(out)))]
        inputs = f" <- {', '.join(layer.inputs)}" if len(layer.inputs) > 1 else ""
        rows.append((f"{layer.name} ({layer.kind}{inputs}) {'x'.join(map(str, out.shape))}", shown))
    sheet = overview(rows, input_image=rgb, max_maps=6, tile=72, title=net.name, clip=0.5)
    dest = ROOT / "docs" / f"graph_{net_name}.png"
    Image.fromarray(sheet).save(dest, optimize=True)
    return dest


if __name__ == "__main__":
    for name, (image, side, nodes) in PICTURES.items():
        print(picture(name, image, side, nodes))
