"""`convtool visualize` and `convtool summary`, driven in-process through Typer."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from convtool.cli import app
from convtool.grid import BACKGROUND, layout

NETS = Path(__file__).resolve().parent.parent / "samples" / "nets"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def small_gray(tmp_path, camera):
    path = tmp_path / "cam.png"
    Image.fromarray(camera[60:188, 180:308].astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def small_rgb(tmp_path, astronaut):
    path = tmp_path / "astro.png"
    Image.fromarray(astronaut[:96, 200:296].astype(np.uint8)).save(path)
    return path


def read(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_filters_grid_has_input_first_and_one_tile_per_filter(tmp_path, small_gray, camera):
    out = tmp_path / "edges.png"
    res = run("visualize", small_gray, "-k", "sobel-x", "-k", "sobel-y", "-k", "gaussian:2",
              "--cols", "2", "-o", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    img = read(out)
    lay = layout(4, 128, 128, cols=2)
    assert img.shape == (lay.height, lay.width, 3)
    y, x = lay.tiles[0]
    np.testing.assert_array_equal(img[y : y + 128, x : x + 128, 0], camera[60:188, 180:308])
    # sobel-x is signed: drawn diverging, so its tile has colour; gaussian is gray
    y, x = lay.tiles[1]
    sob = img[y : y + 128, x : x + 128].astype(int)
    assert (np.abs(sob[..., 0] - sob[..., 2]) > 30).mean() > 0.05
    y, x = lay.tiles[3]
    gauss = img[y : y + 128, x : x + 128].astype(int)
    assert (gauss[..., 0] == gauss[..., 2]).all()
    assert 10 < gauss.mean() < 245  # neither black nor saturated


def test_bank_names_and_random_bank(tmp_path, small_rgb):
    for bank, n in (("edges", 3), ("log", 3), ("random:5", 5)):
        out = tmp_path / f"{bank.replace(':', '_')}.png"
        res = run("visualize", small_rgb, "--bank", bank, "-o", out, "--colorbar")
        assert res.exit_code == 0, res.output
        lay = layout(n + 1, 96, 96, colorbar=True)
        assert read(out).shape == (lay.height, lay.width, 3)


def test_network_writes_one_grid_per_layer_and_an_overview(tmp_path, small_rgb):
    outdir = tmp_path / "layers"
    res = run("visualize", small_rgb, "--net", NETS / "edges.toml", "-o", outdir)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in outdir.glob("*.png"))
    assert names == ["01_conv.png", "02_abs.png", "03_pool.png", "04_conv.png", "05_pool.png",
                     "overview.png"]  # fmt: skip
    assert (outdir / "index.html").is_file()
    for name in names:
        img = read(outdir / name)
        assert (img != BACKGROUND).any(axis=2).mean() > 0.3  # tiles, not empty space
    # 02_abs: unsigned maps, so gray tiles (R == G == B) after the colour input tile
    img = read(outdir / "02_abs.png")
    lay = layout(4, 96, 96, title=True)  # input + 3 maps of 96x96, under a title
    assert img.shape[:2] == (lay.height, lay.width)
    y, x = lay.tiles[1]
    abs_tile = img[y : y + 96, x : x + 96].astype(int)
    assert (abs_tile[..., 0] == abs_tile[..., 2]).all() and abs_tile.max() == 255


def test_inline_layers_with_summary(tmp_path, small_gray):
    outdir = tmp_path / "out"
    res = run("visualize", small_gray, "--layers", "conv(random:4,size=5,seed=1) relu pool(max,2)",
              "-o", outdir, "--summary", "--cmap", "magma", "--normalize", "global")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "104" in res.output  # 4 * 25 + 4 parameters
    assert "4×62×62" in res.output
    assert sorted(p.name for p in outdir.iterdir()) == [
        "01_conv.png", "02_relu.png", "03_pool.png", "index.html", "overview.png",
    ]  # fmt: skip


def test_lenet_sample_runs_on_a_real_image(tmp_path, small_rgb):
    outdir = tmp_path / "lenet"
    res = run("visualize", small_rgb, "--net", NETS / "lenet.toml", "-o", outdir)
    assert res.exit_code == 0, res.output
    assert len(list(outdir.glob("*.png"))) == 12


def test_summary_table_has_lenet5_counts():
    res = run("summary", NETS / "lenet.toml")
    assert res.exit_code == 0, res.output
    for text in ("156", "2,416", "48,120", "10,164", "850", "61,706", "1×32×32", "16×5×5"):
        assert text in res.output


def test_summary_json_and_input_override():
    res = run("summary", NETS / "dwsep.toml", "--input", "64x48x3", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert rows[0]["output"] == [3, 64, 48]
    convs = [r for r in rows if r.get("type") == "conv"]
    assert [r["params"] for r in convs] == [448, 160, 544]
    assert convs[0]["output"] == [16, 32, 24]
    assert [r["rf"] for r in convs] == [3, 7, 7]
    assert convs[2]["fc_params"] == (16 * 32 * 24) * (32 * 32 * 24) + 32 * 32 * 24


def test_summary_of_inline_layers():
    res = run("summary", "conv(random:6,size=5) relu pool(max,2)", "--input", "28x28")
    assert res.exit_code == 0, res.output
    assert "6×12×12" in res.output and "156" in res.output


def one_error_line(res):
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("convtool: error: ")
    return lines[0]


def test_malformed_toml_is_one_usage_error(tmp_path, small_gray):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[layers]]\ntype = conv\n")
    for args in (("summary", bad, "--input", "8x8"), ("visualize", small_gray, "--net", bad)):
        res = run(*args)
        assert res.exit_code == 2
        assert "malformed TOML" in one_error_line(res)


def test_wrong_weights_error_names_the_layer_and_writes_nothing(tmp_path, small_gray):
    np.save(tmp_path / "w.npy", np.zeros((3, 2, 5, 5), np.float32))
    net = tmp_path / "n.toml"
    net.write_text('[[layers]]\ntype = "relu"\n[[layers]]\ntype = "conv"\nweights = "w.npy"\n')
    outdir = tmp_path / "never"
    res = run("visualize", small_gray, "--net", net, "-o", outdir)
    assert res.exit_code == 2
    line = one_error_line(res)
    assert "layer 2 (conv)" in line and "(3, 2, 5, 5)" in line
    assert not outdir.exists()


def test_stack_too_deep_for_the_image_fails_before_writing(tmp_path, small_gray):
    outdir = tmp_path / "never"
    layers = " ".join(["conv(random:2,size=5) pool(max,2)"] * 5)  # 128 -> 62 -> 29 -> 12 -> 4 -> 0
    res = run("visualize", small_gray, "--layers", layers, "-o", outdir)
    assert res.exit_code == 2
    assert "layer 9 (conv): output would be 0x0" in one_error_line(res)
    assert not outdir.exists()


@pytest.mark.parametrize(
    "args,pattern",
    [
        (("-k", "sobel-x", "--net", "x.toml"), "use one or the other"),
        ((), "nothing to draw"),
        (("-k", "sobel-x", "--cmap", "jet"), "unknown colour map"),
        (("-k", "sobel-x", "--normalize", "local"), "map or global"),
        (("-k", "sobel-x", "-o", "x.jpg"), "PNG"),
        (("--bank", "wavelets"), "unknown bank"),
        (("-k", "sobel-x", "--summary"), "--summary needs"),
        (("-k", "nosuchkernel"), "nosuchkernel"),
    ],
)
def test_visualize_usage_errors(tmp_path, small_gray, args, pattern):
    res = run("visualize", small_gray, *args)
    assert res.exit_code == 2
    assert pattern in one_error_line(res)


def test_png_writer_round_trips_through_pillow():
    import io

    from convtool.io import encode_png

    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for level in (0, 1, 9):
        with Image.open(io.BytesIO(encode_png(rgb, level, row_filter="none"))) as im:
            assert im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), rgb)


def test_input_size_crops_and_says_what_it_did(tmp_path, small_rgb):
    outdir = tmp_path / "pre"
    res = run("visualize", small_rgb, "--layers", "abs", "--input-size", "40x32", "--mean",
              "imagenet", "--std", "imagenet", "--summary", "-o", outdir)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3×40×32" in res.output
    assert "resize 45x45, crop 40x32, values 0..1, mean 0.485,0.456,0.406" in res.output
    res = run("visualize", small_rgb, "--layers", "abs", "--resize", "20", "--input-size", "32",
              "-o", tmp_path / "bad")  # fmt: skip
    assert res.exit_code == 2
    assert "resize to 20x20 is smaller than the input size 32x32" in one_error_line(res)
    assert not (tmp_path / "bad").exists()
    for args in (("--pixel-range", "2"), ("--mean", "1,2"), ("--input-size", "0")):
        res = run("visualize", small_rgb, "--layers", "abs", *args, "-o", tmp_path / "bad")
        assert res.exit_code == 2, args
        one_error_line(res)
    res = run("visualize", small_rgb, "-k", "sobel", "--mean", "imagenet", "-o", tmp_path / "k.png")
    assert res.exit_code == 2
    assert "--mean applies to a network" in one_error_line(res)


def test_max_maps_draws_the_most_active_and_a_flat_output_as_one_tile(tmp_path, small_gray):
    from convtool.commands.visualize import _note, _shown_maps
    from convtool.network import feature_maps

    net = "conv(random:40,size=3,seed=2) pool(avg,126)"
    outdir = tmp_path / "most"
    res = run("visualize", small_gray, "--layers", net, "--max-maps", "5", "-o", outdir)
    assert res.exit_code == 0, res.output
    # input + the 5 most active of 40, under a two-line title (it says so)
    lay = layout(6, 126, 126, title=2)
    assert read(outdir / "01_conv.png").shape[:2] == (lay.height, lay.width)
    lay = layout(2, 6 * 28, 7 * 28, title=True)  # input + a 6x7 block of 40 values, 28x
    assert read(outdir / "02_pool.png").shape[:2] == (lay.height, lay.width)

    img = np.asarray(Image.open(small_gray), dtype=np.float32)
    (conv, out), (pool, flat) = feature_maps(img, net)
    maps, labels, total = _shown_maps(conv, out, 5)
    score = np.abs(out).mean(axis=(1, 2))
    expect = np.argsort(-score)[:5]
    assert labels == [conv.labels[i] for i in expect] and total == 40
    assert all(np.array_equal(m, out[i]) for m, i in zip(maps, expect, strict=True))
    assert _note(5, 40) == " (5 most active of 40)" and _note(3, 3) == ""
    maps, labels, total = _shown_maps(pool, flat, 5)  # 40x1x1: one vector, not 40 tiles
    assert len(maps) == 1 and maps[0].shape == (40,) and labels == ["40 values, row by row"]
    assert len(_shown_maps(conv, out, 0)[0]) == 40  # 0 draws all


def test_labels_print_the_top_classes_as_json_lines_when_piped(tmp_path, small_gray):
    from convtool.network import feature_maps

    net = "conv(random:12,size=3,seed=4) relu pool(avg,126)"  # 12 x 1 x 1: a classifier
    names = [f"class {i}" for i in range(12)]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(names) + "\n\n")  # trailing blank lines are not labels
    res = run("visualize", small_gray, "--layers", net, "--labels", labels, "--top", "3",
              "-o", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    img = np.asarray(Image.open(small_gray), dtype=np.float32)
    logits = feature_maps(img, net)[-1][1].reshape(-1).astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    best = np.argsort(-p)[:3]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["index"] for r in rows] == best.tolist()
    assert [r["label"] for r in rows] == [names[i] for i in best]
    np.testing.assert_allclose([r["probability"] for r in rows], p[best], rtol=1e-6)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "Top 3 of 12 classes (softmax of pool)" in page
    assert all(f"<td>{names[i]}</td>" in page for i in best)


def test_bad_labels_are_one_line_and_exit_2(tmp_path, small_gray):
    net = "conv(random:12,size=3) pool(avg,126)"
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    cases = [
        (net, short, "has 2 labels but the last layer pool gives 12 classes"),
        (net, binary, "is not UTF-8 text"),
        (net, tmp_path / "none.txt", "does not exist"),
        ("conv(random:12,size=3)", short, "last layer is a classifier"),
    ]
    for layers, labels, message in cases:
        out = tmp_path / "out"
        res = run("visualize", small_gray, "--layers", layers, "--labels", labels, "-o", out)
        assert res.exit_code == 2, res.output
        assert message in one_error_line(res)
        assert not out.exists()


class _Page(HTMLParser):
    """Collects what a test checks in index.html: references, anchors, text, scripts."""

    def __init__(self):
        super().__init__()
        self.refs, self.links, self.ids, self.text, self.scripts = [], [], set(), [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag in ("img", "script", "link", "iframe", "source"):
            self.refs.append(a.get("src") or a.get("href"))
            self.scripts += tag == "script"
        if tag == "a":
            href = a["href"]
            (self.links if href.startswith("#") else self.refs).append(href)

    def handle_data(self, data):
        self.text.append(data)


def test_index_html_references_every_sheet_and_names_every_layer(tmp_path, small_rgb):
    from convtool.network import plan

    outdir = tmp_path / "maps"
    net = NETS / "lenet.toml"
    res = run("visualize", small_rgb, "--net", net, "-o", outdir)
    assert res.exit_code == 0, res.output
    html = (outdir / "index.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    # self-contained: no scripts, nothing from elsewhere, every file it names is in DIR
    assert page.scripts == 0 and "http" not in html and "@import" not in html
    assert page.refs and all(ref and "/" not in ref for ref in page.refs)
    assert all((outdir / unquote(ref)).is_file() for ref in page.refs)
    pngs = sorted(p.name for p in outdir.glob("*.png"))
    assert sorted(set(page.refs)) == pngs  # every sheet and the overview, nothing else
    # every layer: a table row linking to its sheet's heading, which shows the sheet
    layers = plan(net, (3, 96, 96))
    text = "".join(page.text)
    for layer in layers:
        assert layer.label in text and layer.title in text
        assert f"#{layer.stem}" in page.links and layer.stem in page.ids
    assert set(link[1:] for link in page.links) <= page.ids
    order = [html.index(f'src="{layer.stem}.png"') for layer in layers]
    assert order == sorted(order)


def _fixed_onnx(path, c=3, h=32, w=40, classes=7):
    """A small classifier with a fixed 1 x c x h x w input: conv, relu, pool, gemm, softmax."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(rng.normal(size=(6, c, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(classes, 6)).astype(np.float32), "fw"),
        numpy_helper.from_array(rng.normal(size=classes).astype(np.float32), "fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="probs", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "fixed",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_onnx_model_input_size_is_the_default_and_top_classes_match_onnxruntime(
    tmp_path, small_rgb, small_gray
):
    ort = pytest.importorskip("onnxruntime")
    from convtool.preprocess import preprocess

    model = _fixed_onnx(tmp_path / "fixed.onnx")
    for image in (small_rgb, small_gray):
        outdir = tmp_path / f"maps_{image.stem}"
        res = run("visualize", image, "--net", model, "--mean", "imagenet", "--std", "imagenet",
                  "--top", "7", "--summary", "-o", outdir)  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "3×32×40" in res.output  # the model's own input size, by default
        # shorter side floor(40 / 0.875), then the centre 32x40
        assert "resize 45x45, crop 32x40, " in res.output and "values 0..1" in res.output
        assert ("grey to 3 channels" in res.output) == (image == small_gray)
        rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
        pixels = np.asarray(Image.open(image), dtype=np.float32)
        x = preprocess(pixels, (32, 40), channels=3, mean="imagenet", std="imagenet")
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        (probs,) = session.run(None, {"image": x.transpose(2, 0, 1)[None]})
        order = np.argsort(-probs[0])
        assert [r["index"] for r in rows] == order.tolist()
        np.testing.assert_allclose([r["probability"] for r in rows], probs[0][order], atol=1e-5)
        assert (outdir / "index.html").is_file() and len(list(outdir.glob("*.png"))) == 7


@pytest.mark.parametrize("how", [("-k", "identity"), ("--layers", "abs")])
def test_a_dark_16_bit_input_is_drawn_on_its_16_bit_scale(tmp_path, how):
    # the same picture at 0..200 and at 0..51400 (x257) of 65535: the map tiles are
    # normalised per map and agree; the input tile differs, the dark one is near black
    ramp = np.tile(np.linspace(0, 200, 64), (64, 1)).round()
    sheets = []
    for name, scale in (("dark", 1), ("bright", 257)):
        src = tmp_path / f"{name}.png"
        Image.fromarray((ramp * scale).astype(np.uint16)).save(src)
        out = tmp_path / (f"{name}_maps.png" if how[0] == "-k" else name)
        res = run("visualize", src, *how, "-o", out)
        assert res.exit_code == 0, res.output
        sheets.append(read(out if how[0] == "-k" else sorted(out.glob("01_*.png"))[0]))
    dark, bright = (s.astype(int) for s in sheets)
    differ = (dark != bright).any(axis=2)
    assert differ.sum() > 64 * 64 // 2  # the input tile, not just text
    assert dark[differ].max() <= 1 and bright[differ].max() >= 199


def test_summary_goes_to_stderr_when_stdout_carries_json_lines(tmp_path, small_gray):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"c{i}\n" for i in range(5)))
    res = run("visualize", small_gray, "--layers", "conv(random:5,size=3,seed=2) pool(avg,126)",
              "--labels", labels, "--top", "2", "--summary", "-o", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and [json.loads(line)["rank"] for line in lines] == [1, 2]
    assert "5×126×126" in res.stderr and "50" in res.stderr  # the table: shape, 5*9 + 5 params
