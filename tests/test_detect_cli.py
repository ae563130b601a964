"""`convtool detect` from the shell: outputs parsed back, grep-like exit codes, pictures."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLES, load_sample
from PIL import Image
from typer.testing import CliRunner

from convtool.cli import app
from convtool.detection import detect, match

COINS = SAMPLES / "coins.png"
CAMERA = SAMPLES / "camera.png"
TEXT = SAMPLES / "text.png"
ASTRONAUT = SAMPLES / "astronaut.png"


def run(*args):
    return CliRunner().invoke(app, ["detect", *map(str, args)])


@pytest.fixture(scope="module")
def coin_png(tmp_path_factory) -> Path:
    """One coin cut from samples/coins.png (top-left corner (12, 18), 44x44)."""
    path = tmp_path_factory.mktemp("tmpl") / "coin.png"
    Image.open(COINS).crop((12, 18, 56, 62)).save(path)
    return path


@pytest.fixture(scope="module")
def face_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "face.png"
    Image.open(ASTRONAUT).crop((190, 70, 246, 134)).save(path)
    return path


def test_json_lines_parse_back_and_equal_the_api(coin_png):
    res = run(COINS, "-t", coin_png, "--format", "json", "--threshold", "0.6")
    assert res.exit_code == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    img = load_sample("coins.png")
    tmpl = img[18:62, 12:56]
    api = detect(img, tmpl, threshold=0.6)
    assert len(records) == len(api) > 5
    for rec, d in zip(records, api, strict=True):
        assert rec["image"] == str(COINS)
        assert (rec["x"], rec["y"], rec["width"], rec["height"]) == (d.x, d.y, d.width, d.height)
        assert rec["cx"] == pytest.approx(d.cx) and rec["cy"] == pytest.approx(d.cy)
        assert rec["score"] == pytest.approx(d.score, abs=1e-6)
        assert rec["scale"] == 1.0
    assert (records[0]["x"], records[0]["y"]) == (12, 18)


def test_csv_parses_back(coin_png):
    res = run(COINS, "-t", coin_png, "--format", "csv", "--max", "4", "--threshold", "0.6")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 4
    assert list(rows[0]) == ["image", "x", "y", "width", "height", "cx", "cy", "score", "scale"]
    assert (int(rows[0]["x"]), int(rows[0]["y"]), int(rows[0]["width"])) == (12, 18, 44)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_table_format(coin_png):
    res = run(COINS, "-t", coin_png, "--format", "table", "--max", "2")
    assert res.exit_code == 0, res.stderr
    assert "coins.png: 2 found" in res.stdout and "score" in res.stdout


def test_piped_default_is_json(coin_png):
    res = run(COINS, "-t", coin_png, "--max", "1")  # CliRunner's stdout is not a terminal
    assert res.exit_code == 0
    assert json.loads(res.stdout)["x"] == 12


def test_nothing_found_exits_1(face_png):
    res = run(TEXT, "-t", face_png, "--gray")
    assert res.exit_code == 1, res.stderr
    assert res.stdout == "" and res.stderr == ""


def test_quiet_gives_only_the_exit_code(coin_png, face_png):
    found = run(COINS, "-t", coin_png, "-q")
    assert found.exit_code == 0 and found.stdout == ""
    missed = run(TEXT, "-t", face_png, "-q", "--gray")
    assert missed.exit_code == 1 and missed.stdout == ""


def test_template_larger_than_image_exits_2(tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (400, 100)).save(big)
    res = run(COINS, "-t", big)
    assert res.exit_code == 2
    assert "larger than the image" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--method", "sad"], "unknown method"),
        (["--scales", "1:2"], "scales"),
        (["--format", "xml"], "format"),
        (["--nms-iou", "3"], "nms-iou"),
    ],
)
def test_usage_errors_exit_2(coin_png, args, message):
    res = run(COINS, "-t", coin_png, *args)
    assert res.exit_code == 2
    assert message in res.stderr


@pytest.mark.parametrize(
    "args", [["--nms-iou", "3"], ["--max", "0"], ["--threshold", "nan"], ["--min-distance", "-1"]]
)
def test_option_errors_are_reported_once_before_any_image(coin_png, args):
    res = run(COINS, CAMERA, "-t", coin_png, *args)  # two inputs: still one line
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stdout == ""


def test_template_xor_kernel_exit_2(coin_png):
    assert run(COINS).exit_code == 2
    both = run(COINS, "-t", coin_png, "-k", "sobel-x")
    assert both.exit_code == 2 and "exactly one" in both.stderr
    bank = run(COINS, "-k", "sobel")
    assert bank.exit_code == 2 and "pick one" in bank.stderr


def test_bad_file_in_a_batch_exits_2_and_others_still_report(coin_png, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    res = run(COINS, bad, "-t", coin_png, "--format", "json", "--max", "1")
    assert res.exit_code == 2
    assert json.loads(res.stdout.splitlines()[0])["image"] == str(COINS)
    assert "bad.png" in res.stderr


def test_kernel_as_template(tmp_path):
    # a bright dot on dark: the 'point' pattern of a Laplacian-like kernel
    img = np.zeros((40, 50), np.uint8)
    img[10, 30] = 255
    img[30, 8] = 255
    path = tmp_path / "dots.png"
    Image.fromarray(img).save(path)
    res = run(path, "-k", "0 -1 0; -1 4 -1; 0 -1 0", "--format", "json", "--threshold", "0.9")
    assert res.exit_code == 0, res.stderr
    centres = sorted((r["x"] + 1, r["y"] + 1) for r in map(json.loads, res.stdout.splitlines()))
    assert centres == [(8, 30), (30, 10)]


def test_rescaled_crop_found_with_scales(tmp_path):
    img = load_sample("coins.png")
    big = cv2.resize(img[18:62, 12:56], (66, 66), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "coin15.png"
    Image.fromarray(np.clip(big + 0.5, 0, 255).astype(np.uint8)).save(path)
    res = run(COINS, "-t", path, "--scales", "0.5:1:7", "--format", "json", "--max", "1")
    assert res.exit_code == 0, res.stderr
    rec = json.loads(res.stdout)
    assert abs(rec["x"] - 12) <= 2 and abs(rec["y"] - 18) <= 2
    # the grid 0.5:1:7 has 0.63 and 0.707 around the true 2/3: the nearer one wins
    assert rec["scale"] == pytest.approx(0.63, abs=0.001) and abs(rec["width"] - 44) <= 2


def test_annotated_and_heatmaps(coin_png, tmp_path):
    out = tmp_path / "boxes.png"
    heat = tmp_path / "heat.png"
    raw = tmp_path / "scores.npy"
    res = run(COINS, "-t", coin_png, "-o", out, "--heatmap", heat, "-q")
    assert res.exit_code == 0, res.stderr
    res = run(COINS, "-t", coin_png, "--heatmap", raw, "-q")
    assert res.exit_code == 0, res.stderr
    img = load_sample("coins.png")
    boxes = np.asarray(Image.open(out))
    assert boxes.shape == img.shape + (3,)
    assert (boxes[18, 12:56] == (255, 40, 40)).all()  # the best box's top edge
    colour = np.asarray(Image.open(heat))
    assert colour.shape == img.shape + (3,)
    scores = np.load(raw)
    assert scores.dtype == np.float32 and scores.shape == img.shape
    m = match(img, img[18:62, 12:56])
    # each score sits at its window's centre; the border holds the worst score
    np.testing.assert_array_equal(scores[22 : 22 + m.shape[0], 22 : 22 + m.shape[1]], m)
    assert scores[0, 0] == m.min() and scores[-1, -1] == m.min()
    assert not list(tmp_path.glob(".*.tmp"))


def test_batch_outputs_with_templates(coin_png, tmp_path):
    a = tmp_path / "a.png"
    b = tmp_path / "b.png"
    Image.open(COINS).save(a)
    Image.open(COINS).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(b)
    res = run(a, b, "-t", coin_png, "-o", str(tmp_path / "out" / "{stem}_det.png"), "--max", "2")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "out" / "a_det.png").exists() and (tmp_path / "out" / "b_det.png").exists()
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["image"] for r in records][:2] == [str(a), str(a)]
    assert {r["image"] for r in records} == {str(a), str(b)}
    one = run(a, b, "-t", coin_png, "-o", tmp_path / "single.png")
    assert one.exit_code == 2


def test_output_equal_to_template_is_refused(coin_png):
    res = run(COINS, "-t", coin_png, "-o", coin_png)
    assert res.exit_code == 2 and "refusing" in res.stderr


def test_console_script_streams_json_lines(coin_png):
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "convtool", "detect", str(COINS), str(CAMERA), "-t", str(coin_png)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines and all(json.loads(line)["image"] == str(COINS) for line in lines)
    assert proc.stderr == b""  # no progress bar when stderr is not a terminal
