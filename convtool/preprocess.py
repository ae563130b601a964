"""Input preprocessing for trained models: resize, centre crop, scale, normalise.

A trained network expects its input prepared as it was in training. For the
models users export from PyTorch that is torchvision's recipe::

    Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)

which this module reproduces in plain numpy (no Pillow): :func:`resize` is
Pillow's (and torchvision's) antialiased bilinear filter, :func:`center_crop`
rounds the offsets as torchvision does, and :func:`preprocess` runs the whole
chain on an (H, W) or (H, W, C) image and returns float32 (H, W, C).

Steps, in order
---------------
1. channels: colour to luminance (ITU-R 601-2) when the model takes one
   channel; grey repeated when it takes three; alpha is never part of it;
2. resize (aspect kept: the shorter side to ``resize`` pixels, as
   ``Resize(int)``; or to an exact ``(h, w)``, as ``Resize((h, w))``);
3. centre crop to the model's input size;
4. scale: values divided by the image's full scale (255 for 8-bit, 65535 for
   16-bit) and multiplied by ``pixel_range`` (1: values in 0..1, as
   ``ToTensor``; 255: values in 0..255, as Caffe-era models expect);
5. channel order reversed for ``bgr`` models (OpenCV/Caffe order);
6. ``(x - mean) / std`` per channel, in the model's channel order and on the
   ``pixel_range`` scale.

When only the crop size is known, the image is first resized so its shorter
side is ``floor(max(h, w) / 0.875)``: 256 for a 224x224 input, the ratio
torchvision's reference scripts and timm use (``crop_pct`` 0.875).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

#: ImageNet statistics on the 0..1 scale, RGB order (torchvision's Normalize).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Crop size / resize size of the usual evaluation recipe (224 / 256).
CROP_RATIO = 0.875


# ---------------------------------------------------------------------- parsing


def parse_size(text: str | int | Sequence[int], what: str = "size") -> tuple[int, int]:
    """``"224"``, ``"224x320"`` (height x width) or numbers as ``(h, w)``.

    Examples
    --------
    >>> parse_size("224"), parse_size("224x320"), parse_size(96)
    ((224, 224), (224, 320), (96, 96))
    """
    if isinstance(text, (int, np.integer)):
        nums = [int(text)]
    elif isinstance(text, str):
        parts = re.split(r"\s*[x×,]\s*", text.strip().lower())
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
    else:
        nums = [int(v) for v in text]
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise UsageError(f"{what} {text!r} is not N or HxW with sizes >= 1 (e.g. 224 or 224x224)")
    return nums[0], nums[1]


def parse_triple(text: str | float | Sequence[float], what: str = "value") -> tuple[float, ...]:
    """One number (for every channel) or three, separated by commas or spaces.

    Examples
    --------
    >>> parse_triple("0.5"), parse_triple("0.485, 0.456, 0.406")
    ((0.5,), (0.485, 0.456, 0.406))
    """
    if isinstance(text, (int, float)):
        vals = [float(text)]
    elif isinstance(text, str):
        try:
            vals = [float(p) for p in re.split(r"[\s,]+", text.strip()) if p]
        except ValueError:
            vals = []
    else:
        vals = [float(v) for v in text]
    if len(vals) not in (1, 3) or not all(math.isfinite(v) for v in vals):
        raise UsageError(f"{what} {text!r} is not one number or three (e.g. 0.485,0.456,0.406)")
    return tuple(vals)


# ---------------------------------------------------------------------- geometry


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, (n_out, taps) each, of Pillow's bilinear filter.

    Downscaling widens the triangle by the scale factor (antialiasing); each
    output's weights are normalised to sum to one, as Pillow does.
    """
    scale = n_in / n_out
    width = max(scale, 1.0)  # the triangle's half-width, in input pixels
    centre = (np.arange(n_out) + 0.5) * scale
    # C's (int) truncates toward zero; both ends are clamped to the image
    lo = np.clip(np.trunc(centre - width + 0.5), 0, n_in).astype(np.intp)
    hi = np.clip(np.trunc(centre + width + 0.5), 0, n_in).astype(np.intp)
    taps = int((hi - lo).max())
    pos = lo[:, None] + np.arange(taps)
    weight = np.maximum(0.0, 1.0 - np.abs((pos - centre[:, None] + 0.5) / width))
    weight[pos >= hi[:, None]] = 0.0
    weight /= weight.sum(axis=1, keepdims=True)
    return np.minimum(pos, n_in - 1), weight.astype(np.float32)


def _resize_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    if axis != 0:  # gather whole contiguous rows: on a moved-axis view each tap is a slow gather
        y = _resize_axis(np.ascontiguousarray(np.moveaxis(x, axis, 0)), n_out, 0)
        return np.moveaxis(y, 0, axis)
    index, weight = _bilinear_taps(n_in, n_out)
    out = np.zeros((n_out,) + x.shape[1:], dtype=np.float32)
    extra = (slice(None),) + (None,) * (x.ndim - 1)
    for k in range(index.shape[1]):  # one tap at a time: (n_out, ...) temporaries only
        out += weight[:, k][extra] * x[index[:, k]]
    return out


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) image with antialiased bilinear interpolation.

    The filter is Pillow's ``Image.resize(..., BILINEAR)`` (and torchvision's
    ``Resize``, antialias on): a triangle over the neighbouring pixels when
    enlarging, widened by the reduction factor when reducing, so every input
    pixel contributes. Computed in float32, one axis after the other.

    Examples
    --------
    >>> import numpy as np
    >>> resize(np.array([[0.0, 4.0], [8.0, 12.0]]), 1, 1).tolist()
    [[6.0]]
    >>> resize(np.array([[0.0, 4.0]]), 1, 4).tolist()
    [[0.0, 1.0, 3.0, 4.0]]
    """
    h, w = parse_size((height, width), "resize size")
    x = np.asarray(image, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise UsageError(f"an image must be (H, W) or (H, W, C), got shape {x.shape}")
    # rows first unless they grow: that pass gathers contiguous rows of the full
    # image without a transposed copy, and the column pass then runs on less
    order = ((0, h), (1, w)) if h <= x.shape[0] else ((1, w), (0, h))
    for axis, n in order:
        x = _resize_axis(x, n, axis)
    return np.ascontiguousarray(x)


def shorter_side_size(h: int, w: int, side: int) -> tuple[int, int]:
    """Output size of torchvision's ``Resize(side)``: shorter side ``side``, aspect kept.

    The longer side is truncated, as torchvision computes it.

    Examples
    --------
    >>> shorter_side_size(512, 768, 256), shorter_side_size(300, 200, 224)
    ((256, 384), (336, 224))
    """
    if h <= w:
        return side, int(side * w / h)
    return int(side * h / w), side


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred ``height`` x ``width`` window of an image (torchvision's offsets).

    Examples
    --------
    >>> import numpy as np
    >>> center_crop(np.arange(25).reshape(5, 5), 2, 3).tolist()
    [[11, 12, 13], [16, 17, 18]]
    """
    ih, iw = image.shape[:2]
    if height > ih or width > iw:
        raise UsageError(f"cannot crop {height}x{width} from a {ih}x{iw} image")
    top = int(round((ih - height) / 2.0))
    left = int(round((iw - width) / 2.0))
    return image[top : top + height, left : left + width]


# ---------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Preprocess:
    """A model's input recipe; :meth:`apply` runs it on an image.

    Attributes
    ----------
    size : (h, w) or None
        The model's input size: centre crop to it (after ``resize``).
        None keeps the image's size.
    resize : int, (h, w) or None
        Shorter side before the crop (int), or an exact size (tuple). None:
        ``floor(max(size) / 0.875)`` when ``size`` is set, else no resize.
    channels : int or None
        The model's input channels (1 or 3 convert; None keeps the image's).
    pixel_range : float or None
        1 (0..1) or 255 (0..255); None leaves values on the image's own scale.
    mean, std : tuple of float or None
        Per channel on the ``pixel_range`` scale, in the model's channel order.
    bgr : bool
        Reverse the channel order (RGB to BGR).
    """

    size: tuple[int, int] | None = None
    resize: int | tuple[int, int] | None = None
    channels: int | None = None
    pixel_range: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    bgr: bool = False

    def __post_init__(self) -> None:
        if self.pixel_range is not None and self.pixel_range not in (1, 255):
            raise UsageError(
                f"pixel range must be 1 (0..1) or 255 (0..255), not {self.pixel_range}"
            )
        if self.std is not None and any(s == 0 for s in self.std):
            raise UsageError("std must not be zero")
        if self.channels is not None and self.channels < 1:
            raise UsageError(f"channels must be >= 1, got {self.channels}")

    def resize_to(self, h: int, w: int) -> tuple[int, int] | None:
        """The size an ``h`` x ``w`` image is resized to, or None (no resize).

        Raises UsageError when the result is smaller than the crop.

        Examples
        --------
        >>> Preprocess(size=(224, 224)).resize_to(512, 768)
        (256, 384)
        """
        r = self.resize
        if r is None and self.size is not None:
            r = math.floor(max(self.size) / CROP_RATIO)
        if r is None:
            return None
        out = shorter_side_size(h, w, r) if isinstance(r, int) else (int(r[0]), int(r[1]))
        if self.size is not None and (out[0] < self.size[0] or out[1] < self.size[1]):
            raise UsageError(
                f"resize to {out[0]}x{out[1]} is smaller than the input size "
                f"{self.size[0]}x{self.size[1]}: give a larger --resize"
            )
        return out

    def apply(self, image: np.ndarray, full_scale: float = 255.0) -> np.ndarray:
        """Run the recipe on an (H, W) or (H, W, C) image on its own scale.

        Parameters
        ----------
        image : array
            Values on the file's scale; ``full_scale`` is its white (255 for
            8-bit, 65535 for 16-bit, 1 for float images).

        Returns
        -------
        numpy.ndarray
            float32 (H, W, C), C the model's channels.

        Examples
        --------
        >>> import numpy as np
        >>> img = np.full((300, 400, 3), 255.0, np.float32)
        >>> x = Preprocess(size=(224, 224), pixel_range=1, mean=IMAGENET_MEAN,
        ...                std=IMAGENET_STD).apply(img)
        >>> x.shape, [round(float(v), 3) for v in x[0, 0]]
        ((224, 224, 3), [2.249, 2.429, 2.64])
        """
        return self.normalize(self.fit(image), full_scale)

    def fit(self, image: np.ndarray) -> np.ndarray:
        """Steps 1-3 only (channels, resize, crop): float32 (H, W, C) on the image's scale."""
        x = np.asarray(image, dtype=np.float32)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise UsageError(f"an image must be (H, W) or (H, W, C), got shape {x.shape}")
        x = _convert_channels(x, self.channels)
        target = self.resize_to(x.shape[0], x.shape[1])
        if target is not None:
            x = resize(x, *target)
        if self.size is not None:
            x = center_crop(x, *self.size)
        return x

    def normalize(self, x: np.ndarray, full_scale: float = 255.0) -> np.ndarray:
        """Steps 4-6 only (scale, channel order, mean/std) on an (H, W, C) array."""
        if self.pixel_range is not None:
            x = x * np.float32(self.pixel_range / full_scale)
        if self.bgr:
            x = x[..., ::-1]
        c = x.shape[2]
        for name, vals in (("mean", self.mean), ("std", self.std)):
            if vals is not None and len(vals) not in (1, c):
                raise UsageError(f"{len(vals)} {name} values for {c} channels: give 1 or {c}")
        if self.mean is not None:
            x = x - np.asarray(self.mean, np.float32)
        if self.std is not None:
            x = x / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    def describe(self, h: int, w: int, c: int | None = None) -> str:
        """One line saying what :meth:`apply` does to an ``h`` x ``w`` image.

        Examples
        --------
        >>> Preprocess(size=(224, 224), pixel_range=1).describe(512, 768)
        'resize 256x384, crop 224x224, values 0..1'
        """
        steps = []
        target = self.resize_to(h, w)
        if target is not None and target != (h, w):
            steps.append(f"resize {target[0]}x{target[1]}")
        if self.size is not None and self.size != (target or (h, w)):
            steps.append(f"crop {self.size[0]}x{self.size[1]}")
        if self.channels == 1 and c != 1:
            steps.append("luminance")
        elif c == 1 and self.channels and self.channels > 1:
            steps.append(f"grey to {self.channels} channels")
        if self.pixel_range is not None:
            steps.append(f"values 0..{self.pixel_range:g}")
        if self.bgr:
            steps.append("BGR")
        if self.mean is not None:
            steps.append("mean " + ",".join(f"{v:g}" for v in self.mean))
        if self.std is not None:
            steps.append("std " + ",".join(f"{v:g}" for v in self.std))
        return ", ".join(steps) or "none"


def _convert_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    c = x.shape[2]
    if channels is None or channels == c:
        return x
    if channels == 1 and c in (3, 4):
        from .io import luminance

        return luminance(x[..., :3])[..., None]
    if c == 1:
        return np.repeat(x, channels, axis=2)
    if c == 4 and channels == 3:
        return x[..., :3]
    raise UsageError(f"the model takes {channels} channels; the image has {c}")


def preprocess(
    image: np.ndarray,
    size: int | tuple[int, int] | str | None = None,
    *,
    resize: int | tuple[int, int] | None = None,
    channels: int | None = None,
    pixel_range: float | None = 1,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    bgr: bool = False,
    full_scale: float = 255.0,
) -> np.ndarray:
    """Prepare an image for a trained model: resize, crop, scale and normalise.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array on its own scale (0..``full_scale``)
    size : the model's input size (N, ``"HxW"`` or (h, w)); None keeps the image's
    resize : shorter side (int) or exact (h, w) before the crop; default
        ``floor(max(size) / 0.875)`` (256 for 224)
    channels : the model's input channels (1: luminance, 3: grey repeated)
    pixel_range : 1 (values 0..1), 255 (0..255) or None (the image's own scale)
    mean, std : one or three numbers on the ``pixel_range`` scale, in the
        model's channel order, or ``"imagenet"`` (0.485,0.456,0.406 and
        0.229,0.224,0.225 on 0..1, times 255 for ``pixel_range`` 255,
        reversed for ``bgr``)
    bgr : reverse the channel order
    full_scale : white on the image's scale: 255 (8-bit), 65535 (16-bit), 1

    Returns
    -------
    numpy.ndarray
        float32 (H, W, C).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.float32)
    >>> x = preprocess(img, 224, mean="imagenet", std="imagenet")
    >>> x.shape, x.dtype.name
    ((224, 224, 3), 'float32')
    """
    mean_t = stats(mean, "mean", pixel_range=pixel_range, bgr=bgr)
    std_t = stats(std, "std", pixel_range=pixel_range, bgr=bgr)
    recipe = Preprocess(
        size=None if size is None else parse_size(size, "input size"),
        resize=resize,
        channels=channels,
        pixel_range=pixel_range,
        mean=mean_t,
        std=std_t,
        bgr=bgr,
    )
    return recipe.apply(image, full_scale)


def stats(
    value: Sequence[float] | str | None,
    which: str,
    *,
    pixel_range: float | None = 1,
    bgr: bool = False,
) -> tuple[float, ...] | None:
    """``--mean`` / ``--std`` text as numbers: ``imagenet``, one number or three.

    ``which`` is ``"mean"`` or ``"std"``; the preset is scaled to the
    ``pixel_range`` and put in BGR order for ``bgr`` models.

    Examples
    --------
    >>> stats("imagenet", "mean", pixel_range=255, bgr=True)
    (103.53, 116.28, 123.675)
    >>> stats("0.5", "std")
    (0.5,)
    """
    if which not in ("mean", "std"):
        raise UsageError(f"which must be mean or std, not {which!r}")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "imagenet":
        f = 255.0 if pixel_range == 255 else 1.0
        preset = IMAGENET_MEAN if which == "mean" else IMAGENET_STD
        vals = tuple(round(v * f, 6) for v in preset)
        return vals[::-1] if bgr else vals
    return parse_triple(value, which)
