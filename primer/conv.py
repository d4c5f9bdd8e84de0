"""Convolutions and the building blocks around them (chapter 3).

Read top to bottom:

1. ``output_size`` — the one formula behind stride, padding and dilation.
2. ``im2col`` and ``conv2d`` — a teaching convolution: cut every patch out of the (padded)
   image, lay the patches out as rows of a matrix, and multiply by the flattened kernels.
   Like every deep-learning library, it computes cross-correlation (the kernel is not flipped).
3. ``reads_map`` and ``dot_product_at`` — which input cells one output cell reads, and the
   dot product that turns them into one number.
4. ``KERNELS`` and ``apply_kernel`` — classic hand-designed filters, applied fast with torch.
5. Activations, pooling and batch normalization, each via torch.
6. ``receptive_field`` — how far one output pixel "sees" through a stack of layers.
7. ``sample_image`` — real 2-D images for the lab, all shipped with installed packages.
8. The chapter's labs: their state (one small dataclass each, so a link carries the setup),
   the text forms of an edited kernel and a layer stack, and the user's own DICOM.
9. Learned filters: a trained model's first-layer kernels, how far training moved them, and
   their feature maps next to those of the hand-designed kernels.

Settings a user can make impossible (a kernel larger than the padded image, a stride of 0)
raise ``ConvSettingError`` with a stable ``code`` so the page can show a translated message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view

from primer.labstate import register_lab


class ConvSettingError(ValueError):
    """An impossible convolution / pooling setting, or an unavailable sample image.

    ``code`` is stable and machine-readable (the UI translates it); ``detail`` carries the
    numbers needed to explain the problem.
    """

    def __init__(self, code: str, **detail: object) -> None:
        self.code = code
        self.detail = dict(detail)
        super().__init__(f"{code}: {self.detail}")


# ---------------------------------------------------------------------------------------------
# 1. Output size
# ---------------------------------------------------------------------------------------------

IntOrPair = int | tuple[int, int]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(value: object, name: str, minimum: int) -> int:
    """Return ``value`` as an int, or raise ``bad_<name>`` when it is not an int ≥ minimum."""
    if not _is_int(value) or value < minimum:
        raise ConvSettingError(f"bad_{name}", name=name, value=value, minimum=minimum)
    return int(value)


def _pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """Accept an int or a (height, width) pair, as torch does."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _check_int(value[0], name, minimum), _check_int(value[1], name, minimum)
    number = _check_int(value, name, minimum)
    return number, number


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: d·(k − 1) + 1 (a 3-tap kernel at dilation 2 spans 5 cells)."""
    return dilation * (kernel - 1) + 1


def output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length along one axis: ⌊(n + 2p − d(k − 1) − 1) / s⌋ + 1 (torch's floor mode)."""
    n = _check_int(n, "input_size", 1)
    kernel = _check_int(kernel, "kernel", 1)
    stride = _check_int(stride, "stride", 1)
    padding = _check_int(padding, "padding", 0)
    dilation = _check_int(dilation, "dilation", 1)
    span = effective_kernel(kernel, dilation)
    if span > n + 2 * padding:
        raise ConvSettingError(
            "kernel_too_large",
            input_size=n,
            padded_size=n + 2 * padding,
            kernel=kernel,
            dilation=dilation,
            effective_kernel=span,
            padding=padding,
        )
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_size_explained(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> str:
    """The formula with the numbers filled in, e.g. ``⌊(7 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 4``."""
    result = output_size(n, kernel, stride, padding, dilation)
    return f"⌊({n} + 2·{padding} − {dilation}·({kernel}−1) − 1)/{stride}⌋ + 1 = {result}"


# ---------------------------------------------------------------------------------------------
# 2. The teaching convolution: im2col + one matrix multiply
# ---------------------------------------------------------------------------------------------


def im2col(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """Every patch a kernel visits, one row per output pixel.

    ``x`` is (N, C, H, W); the result is (N, H_out·W_out, C·kh·kw), rows in raster order of
    the output, columns ordered channel, then kernel row, then kernel column (as torch's unfold).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ConvSettingError("bad_shape", expected="(N, C, H, W)", shape=tuple(x.shape))
    kh, kw = _pair(kernel_size, "kernel", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    n_images, channels, height, width = x.shape
    out_h = output_size(height, kh, sh, ph, dh)
    out_w = output_size(width, kw, sw, pw, dw)

    # Zero padding: the kernel may hang over the border by `padding` cells.
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (N, C, H+2ph, W+2pw)
    # A view (no copy) of every window of the dilated span, at every position.
    windows = sliding_window_view(
        padded, (effective_kernel(kh, dh), effective_kernel(kw, dw)), axis=(2, 3)
    )  # (N, C, H+2ph−span_h+1, W+2pw−span_w+1, span_h, span_w)
    # Stride skips positions; dilation skips cells inside each window.
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, H_out, W_out, kh, kw)
    assert windows.shape[2:4] == (out_h, out_w)
    patches = windows.transpose(0, 2, 3, 1, 4, 5)  # (N, H_out, W_out, C, kh, kw)
    # This reshape is the one real copy: the "column" matrix that gives im2col its name.
    columns = patches.reshape(n_images, out_h * out_w, channels * kh * kw)
    return columns  # (N, L, C·kh·kw)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in torch) written to be read.

    ``x`` is (H, W), (C, H, W) or (N, C, H, W); ``weight`` is (kh, kw) for one input and one
    output channel, or (C_out, C_in, kh, kw); ``bias`` is (C_out,). The output keeps the input's
    leading dimensions: (N, C_out, H', W'), (C_out, H', W'), or (H', W') for a 2-D input and a
    single output channel. Float64 in gives float64 out; anything else computes in float32.
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    input_ndim = x.ndim
    if input_ndim not in (2, 3, 4):
        raise ConvSettingError(
            "bad_shape",
            expected="(H, W), (C, H, W) or (N, C, H, W)",
            shape=tuple(x.shape),
        )
    if weight.ndim not in (2, 4):
        raise ConvSettingError(
            "bad_shape",
            expected="(kh, kw) or (C_out, C_in, kh, kw)",
            shape=tuple(weight.shape),
        )
    # float64 when either side is float64 (for exact comparisons), float32 otherwise.
    dtype = np.float64 if np.float64 in (x.dtype, weight.dtype) else np.float32

    # Missing leading axes become 1: every case is then the general (N, C, H, W) one.
    x4 = x.reshape((1,) * (4 - input_ndim) + x.shape)  # (N, C, H, W)
    w_shape = (1,) * (4 - weight.ndim) + weight.shape
    w4 = weight.reshape(w_shape)  # (C_out, C_in, kh, kw)
    x4, w4 = x4.astype(dtype, copy=False), w4.astype(dtype, copy=False)
    n_images, channels, height, width = x4.shape
    out_channels, in_channels, kh, kw = w4.shape
    if in_channels != channels:
        raise ConvSettingError("channel_mismatch", input_channels=channels, kernel_channels=in_channels)

    columns = im2col(x4, (kh, kw), stride, padding, dilation)  # (N, L, C·kh·kw)
    kernels = w4.reshape(out_channels, in_channels * kh * kw)  # (C_out, C·kh·kw)
    # Each output value is one patch (row) dotted with one kernel: a single matrix multiply.
    y = columns @ kernels.T  # (N, L, C_out)
    if bias is not None:
        bias = np.asarray(bias, dtype=dtype).reshape(-1)  # (C_out,)
        if bias.shape[0] != out_channels:
            raise ConvSettingError(
                "bad_shape",
                expected=f"bias of length {out_channels}",
                shape=tuple(bias.shape),
            )
        y = y + bias

    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    out_h = output_size(height, kh, sh, ph, dh)
    out_w = output_size(width, kw, sw, pw, dw)
    y = y.reshape(n_images, out_h, out_w, out_channels)  # (N, H_out, W_out, C_out)
    y = y.transpose(0, 3, 1, 2)  # (N, C_out, H_out, W_out)

    if input_ndim == 4:
        return np.ascontiguousarray(y)
    y = y[0]  # (C_out, H_out, W_out)
    if input_ndim == 2 and out_channels == 1:
        y = y[0]  # (H_out, W_out)
    return np.ascontiguousarray(y)


# ---------------------------------------------------------------------------------------------
# 3. Which input cells one output cell reads, and its dot product
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadsMap:
    """For every output cell, the input cells it reads (indices in the unpadded image's frame).

    An index below 0 or at/after the input size is a padding cell (a zero).
    """

    input_shape: tuple[int, int]
    padding: tuple[int, int]
    # rows[i, a]: input row read by output row i through kernel row a.
    rows: np.ndarray  # (H_out, kh)
    # cols[j, b]: input column read by output column j through kernel column b.
    cols: np.ndarray  # (W_out, kw)

    @property
    def output_shape(self) -> tuple[int, int]:
        return self.rows.shape[0], self.cols.shape[0]

    @property
    def padded_shape(self) -> tuple[int, int]:
        return (
            self.input_shape[0] + 2 * self.padding[0],
            self.input_shape[1] + 2 * self.padding[1],
        )

    def cells(self, out_row: int, out_col: int) -> np.ndarray:
        """(kh, kw, 2) array of (row, col) input positions read by one output cell."""
        row_grid, col_grid = np.meshgrid(self.rows[out_row], self.cols[out_col], indexing="ij")
        return np.stack([row_grid, col_grid], axis=-1)  # (kh, kw, 2)

    def padding_mask(self, out_row: int, out_col: int) -> np.ndarray:
        """(kh, kw) True where the kernel tap lands on padding rather than on the image."""
        rows = self.rows[out_row][:, None]  # (kh, 1)
        cols = self.cols[out_col][None, :]  # (1, kw)
        height, width = self.input_shape
        return (rows < 0) | (rows >= height) | (cols < 0) | (cols >= width)

    def never_read(self) -> int:
        """How many image cells (not padding) no output cell reads: stride larger than the span."""
        ph, pw = self.padding
        height, width = self.input_shape
        return int((self.read_counts()[ph : ph + height, pw : pw + width] == 0).sum())

    def padding_only_outputs(self) -> int:
        """How many output cells read nothing but padding zeros (too much padding)."""
        out_h, out_w = self.output_shape
        return sum(bool(self.padding_mask(i, j).all()) for i in range(out_h) for j in range(out_w))

    def read_counts(self) -> np.ndarray:
        """(H+2ph, W+2pw) how many (output cell, kernel tap) pairs read each padded cell.

        Zeros inside the image show cells that stride or dilation skip entirely.
        """
        padded_h, padded_w = self.padded_shape
        rows = (self.rows + self.padding[0]).ravel()  # padded coordinates
        cols = (self.cols + self.padding[1]).ravel()
        row_counts = np.bincount(rows, minlength=padded_h)  # (H+2ph,)
        col_counts = np.bincount(cols, minlength=padded_w)  # (W+2pw,)
        return np.outer(row_counts, col_counts)  # (H+2ph, W+2pw)


def reads_map(
    n: IntOrPair,
    kernel: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> ReadsMap:
    """Which input cells each output cell reads, for a small grid view (sizes may be pairs)."""
    size_h, size_w = _pair(n, "input_size", 1)
    kh, kw = _pair(kernel, "kernel", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)

    def taps(size: int, k: int, s: int, p: int, d: int) -> np.ndarray:
        # Output cell i starts at i·s in padded coordinates, i·s − p in image coordinates,
        # and its kernel taps are d cells apart.
        starts = np.arange(output_size(size, k, s, p, d)) * s - p  # (n_out,)
        return starts[:, None] + np.arange(k)[None, :] * d  # (n_out, k)

    return ReadsMap(
        input_shape=(size_h, size_w),
        padding=(ph, pw),
        rows=taps(size_h, kh, sh, ph, dh),
        cols=taps(size_w, kw, sw, pw, dw),
    )


@dataclass(frozen=True)
class DotProduct:
    """One output pixel, step by step: patch ⊙ kernel, then the sum."""

    # Input values read, zeros where the kernel sits on padding.
    patch: np.ndarray  # (kh, kw)
    kernel: np.ndarray  # (kh, kw)
    products: np.ndarray  # (kh, kw) patch * kernel
    total: float  # sum of products: the output pixel (before any bias)
    positions: np.ndarray  # (kh, kw, 2) input (row, col) of each tap, image coordinates
    padding_mask: np.ndarray  # (kh, kw) True where the tap reads padding


def dot_product_at(
    image: np.ndarray,
    kernel: np.ndarray,
    out_row: int,
    out_col: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> DotProduct:
    """The dot product that produces output pixel (out_row, out_col) of ``conv2d(image, kernel)``."""
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ConvSettingError(
            "bad_shape",
            expected="2-D image and 2-D kernel",
            shape=(tuple(image.shape), tuple(kernel.shape)),
        )
    reads = reads_map(image.shape, kernel.shape, stride, padding, dilation)
    out_h, out_w = reads.output_shape
    if not (_is_int(out_row) and _is_int(out_col) and 0 <= out_row < out_h and 0 <= out_col < out_w):
        raise ConvSettingError("bad_position", row=out_row, col=out_col, output_shape=(out_h, out_w))

    ph, pw = reads.padding
    padded = np.pad(image, ((ph, ph), (pw, pw)))  # (H+2ph, W+2pw)
    positions = reads.cells(out_row, out_col)  # (kh, kw, 2)
    patch = padded[positions[..., 0] + ph, positions[..., 1] + pw]  # (kh, kw)
    products = patch * kernel
    return DotProduct(
        patch=patch,
        kernel=kernel,
        products=products,
        total=float(products.sum()),
        positions=positions,
        padding_mask=reads.padding_mask(out_row, out_col),
    )


# ---------------------------------------------------------------------------------------------
# 4. Classic kernels
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    name: str
    weights: np.ndarray  # (k, k) float32, read-only: copy it before editing
    en: str
    zh: str


def _kernel(name: str, weights: Sequence[Sequence[float]], scale: float, en: str, zh: str) -> Kernel:
    array = np.asarray(weights, dtype=np.float32) * np.float32(scale)
    array.setflags(write=False)  # the registry is shared by every user of the app
    return Kernel(name=name, weights=array, en=en, zh=zh)


_BINOMIAL_5 = np.array([1, 4, 6, 4, 1], dtype=np.float64)

KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        _kernel(
            "identity",
            [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
            1.0,
            "Copies the centre pixel: the image comes out unchanged. A baseline to compare against.",
            "恒等核：输出直接复制中心像素，图像不变，可作为对照。",
        ),
        _kernel(
            "box_blur",
            np.ones((3, 3)),
            1 / 9,
            "Plain average of the 3×3 neighbourhood: lowers noise but blurs edges and small structures alike.",
            "均值模糊：取 3×3 邻域的平均值，噪声降低，但边缘和细小结构也随之模糊。",
        ),
        _kernel(
            "gaussian_3x3",
            np.outer([1, 2, 1], [1, 2, 1]),
            1 / 16,
            "Weighted average that favours the centre: smooths noise with less edge blurring than the box filter.",
            "3×3 高斯平滑：中心权重较大的加权平均，降噪的同时比均值模糊更好地保留边缘。",
        ),
        _kernel(
            "gaussian_5x5",
            np.outer(_BINOMIAL_5, _BINOMIAL_5),
            1 / 256,
            "Wider Gaussian: stronger smoothing over a larger area, much like choosing a soft "
            "rather than a sharp CT reconstruction kernel.",
            "5×5 高斯平滑：在更大范围内平滑，降噪更明显，类似 CT 选用软组织（平滑）重建核而非锐利核。",
        ),
        _kernel(
            "sharpen",
            [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
            1.0,
            "Boosts each pixel against its neighbours: edges and fine detail stand out, and so does noise.",
            "锐化：增强像素与周围像素的差异，边缘和细节更清晰，但噪声也被放大。",
        ),
        _kernel(
            "sobel_x",
            [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
            1.0,
            "Left-to-right intensity change: bright on vertical edges such as a cortical margin "
            "or an organ's lateral border; the sign tells dark-to-bright from bright-to-dark.",
            "Sobel x：检测左右方向的灰度变化，突出纵行边缘（如骨皮质或脏器外侧缘）；正负号区分由暗到亮和由亮到暗。",
        ),
        _kernel(
            "sobel_y",
            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
            1.0,
            "Top-to-bottom intensity change: bright on horizontal edges such as the diaphragm or vertebral endplates.",
            "Sobel y：检测上下方向的灰度变化，突出横行边缘（如膈面或椎体终板）。",
        ),
        _kernel(
            "laplacian",
            [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
            1.0,
            "Second derivative in every direction: near zero on flat areas and smooth ramps, "
            "strong on fine edges, dots and noise, whatever their orientation.",
            "拉普拉斯：各方向的二阶导数，在均匀区和平缓过渡区接近零，对细小边缘、点状影和噪声反应强烈，且不分方向。",
        ),
        _kernel(
            "emboss",
            [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
            1.0,
            "Diagonal difference added to the image: edges look raised or sunken, as if lit "
            "from one corner; a direction-selective edge detector.",
            "浮雕：在原图上叠加对角方向的差分，边缘呈现从一角打光般的凸起或凹陷，是有方向选择性的边缘检测。",
        ),
    )
}


def apply_kernel(
    image: np.ndarray,
    kernel: np.ndarray | str,
    padding: Literal["same", "reflect", "valid"] = "same",
) -> np.ndarray:
    """Filter a whole 2-D image for display (torch's conv2d, fast on 512×512).

    ``padding``: "same" pads with zeros as CNNs do (dark rims appear at the border),
    "reflect" mirrors the image at the border (no rims), "valid" does not pad (smaller output).
    ``kernel`` is a 2-D array or a name in ``KERNELS``.
    """
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise ConvSettingError("unknown_kernel", name=kernel, known=sorted(KERNELS))
        kernel = KERNELS[kernel].weights
    image = np.asarray(image, dtype=np.float32)
    # A writable copy: torch refuses read-only arrays such as the registry's.
    kernel = np.array(kernel, dtype=np.float32)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ConvSettingError(
            "bad_shape",
            expected="2-D image and 2-D kernel",
            shape=(tuple(image.shape), tuple(kernel.shape)),
        )
    if padding not in ("same", "reflect", "valid"):
        raise ConvSettingError("bad_padding", name="padding", value=padding)
    kh, kw = kernel.shape
    height, width = image.shape
    if padding == "valid":
        output_size(height, kh)
        output_size(width, kw)
    elif padding == "reflect" and (kh // 2 >= height or kw // 2 >= width):
        # Mirroring needs more image than half the kernel on every side.
        raise ConvSettingError("image_too_small", height=height, width=width, kernel=max(kh, kw))

    x = torch.from_numpy(image)[None, None]  # (1, 1, H, W)
    w = torch.from_numpy(kernel)[None, None]  # (1, 1, kh, kw)
    with torch.no_grad():
        if padding != "valid":
            # Even kernels need one more cell on one side to keep the size: (left, right, top, bottom).
            pads = ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2)
            x = F.pad(x, pads, mode="constant" if padding == "same" else "reflect")
        y = F.conv2d(x, w)  # (1, 1, H', W')
    return y[0, 0].numpy()  # (H', W')


# ---------------------------------------------------------------------------------------------
# 5. Activations, pooling, batch normalization
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")


def activate(x: np.ndarray, name: str, negative_slope: float = 0.01) -> np.ndarray:
    """Apply an activation (torch's own) elementwise; ``negative_slope`` is for leaky ReLU."""
    if name not in ACTIVATIONS:
        raise ConvSettingError("unknown_activation", name=name, known=list(ACTIVATIONS))
    t = torch.as_tensor(np.asarray(x))
    with torch.no_grad():
        return _torch_activation(t, name, negative_slope).numpy()


def _torch_activation(t: torch.Tensor, name: str, negative_slope: float) -> torch.Tensor:
    if name == "relu":
        return F.relu(t)
    if name == "leaky_relu":
        return F.leaky_relu(t, negative_slope)
    if name == "sigmoid":
        return torch.sigmoid(t)
    return torch.tanh(t)


@dataclass(frozen=True)
class ActivationCurve:
    name: str
    x: np.ndarray  # (num_points,)
    y: np.ndarray  # (num_points,) f(x)
    slope: np.ndarray  # (num_points,) f'(x) by autograd: the gradient that flows back


def activation_curve(
    name: str,
    x_min: float = -6.0,
    x_max: float = 6.0,
    num_points: int = 241,
    negative_slope: float = 0.01,
) -> ActivationCurve:
    """The curve and its slope; the slope shows why sigmoid and tanh saturate and ReLU does not."""
    if name not in ACTIVATIONS:
        raise ConvSettingError("unknown_activation", name=name, known=list(ACTIVATIONS))
    x = torch.linspace(x_min, x_max, num_points, dtype=torch.float64, requires_grad=True)
    y = _torch_activation(x, name, negative_slope)
    (slope,) = torch.autograd.grad(y.sum(), x)
    return ActivationCurve(name=name, x=x.detach().numpy(), y=y.detach().numpy(), slope=slope.numpy())


@dataclass(frozen=True)
class PoolResult:
    output: np.ndarray  # same leading dimensions as the input, pooled H', W'
    output_hw: tuple[int, int]
    explained: tuple[str, str]  # the output-size formula for height and width


def pool2d(
    x: np.ndarray,
    kind: Literal["max", "avg"] = "max",
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
) -> PoolResult:
    """Max or average pooling via torch on (H, W), (C, H, W) or (N, C, H, W).

    ``stride`` defaults to ``size`` (non-overlapping windows), as in torch.
    """
    if kind not in ("max", "avg"):
        raise ConvSettingError("bad_pool_kind", kind=kind)
    x = np.asarray(x)
    if x.ndim not in (2, 3, 4):
        raise ConvSettingError(
            "bad_shape",
            expected="(H, W), (C, H, W) or (N, C, H, W)",
            shape=tuple(x.shape),
        )
    kh, kw = _pair(size, "kernel", 1)
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", 1)
    height, width = x.shape[-2:]
    explained = (
        output_size_explained(height, kh, sh),
        output_size_explained(width, kw, sw),
    )
    out_hw = (output_size(height, kh, sh), output_size(width, kw, sw))

    dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    t = torch.as_tensor(x, dtype=dtype)
    t = t.reshape((-1, 1) + x.shape[-2:])  # (N·C, 1, H, W)
    with torch.no_grad():
        if kind == "max":
            y = F.max_pool2d(t, (kh, kw), (sh, sw))
        else:
            y = F.avg_pool2d(t, (kh, kw), (sh, sw))  # (N·C, 1, H', W')
    output = y.numpy().reshape(x.shape[:-2] + out_hw)  # input's leading dims, (H', W')
    return PoolResult(output=output, output_hw=out_hw, explained=explained)


@dataclass(frozen=True)
class BatchNormDemo:
    output: np.ndarray  # (N, C, H, W) normalized feature maps
    mean_before: np.ndarray  # (C,) per-channel mean over batch and space
    # Biased (divide by n) variance: the one training mode normalizes with.
    var_before: np.ndarray  # (C,)
    mean_after: np.ndarray  # (C,) ≈ 0
    # ≈ 1, slightly less because eps is added under the square root.
    var_after: np.ndarray  # (C,)
    # The statistics kept for evaluation mode, after this one step.
    running_mean: np.ndarray  # (C,)
    running_var: np.ndarray  # (C,) uses the unbiased variance, as torch does
    eps: float


def batchnorm_demo(feature_maps: np.ndarray, eps: float = 1e-5, momentum: float = 0.1) -> BatchNormDemo:
    """One training-mode step of ``torch.nn.BatchNorm2d`` (γ = 1, β = 0) on (N, C, H, W) maps."""
    x = np.asarray(feature_maps)
    if x.ndim != 4:
        raise ConvSettingError("bad_shape", expected="(N, C, H, W)", shape=tuple(x.shape))
    if x.shape[0] * x.shape[2] * x.shape[3] < 2:
        # torch refuses: one value per channel has no variance to normalize by.
        raise ConvSettingError("batch_too_small", shape=tuple(x.shape))
    dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    t = torch.as_tensor(x, dtype=dtype)  # (N, C, H, W)
    layer = torch.nn.BatchNorm2d(x.shape[1], eps=eps, momentum=momentum, dtype=dtype)
    layer.train()
    with torch.no_grad():
        y = layer(t)  # (N, C, H, W)
    axes = (0, 2, 3)  # statistics are per channel, pooled over batch and space
    return BatchNormDemo(
        output=y.numpy(),
        mean_before=t.mean(dim=axes).numpy(),
        var_before=t.var(dim=axes, unbiased=False).numpy(),
        mean_after=y.mean(dim=axes).numpy(),
        var_after=y.var(dim=axes, unbiased=False).numpy(),
        running_mean=layer.running_mean.numpy().copy(),
        running_var=layer.running_var.numpy().copy(),
        eps=eps,
    )


# ---------------------------------------------------------------------------------------------
# 6. Receptive field through a stack of layers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One layer's geometry; the defaults are the workhorse of modern CNNs."""

    kind: Literal["conv", "pool"] = "conv"  # both grow the field by the same rule
    kernel: int = 3  # 3×3 is the most common kernel since VGG
    stride: int = 1  # stride 1 keeps resolution; pooling layers usually use 2
    dilation: int = 1  # 1 = an ordinary, gap-free kernel
    padding: int = 0  # padding shifts the field's start, never its size


@dataclass(frozen=True)
class ReceptiveFieldRow:
    """The receptive field after one layer, along one axis, in input-pixel units."""

    layer: LayerSpec
    effective_kernel: int  # d·(k − 1) + 1
    size: int  # r: input pixels one output pixel sees (first to last)
    jump: int  # j: input pixels between neighbouring output pixels (product of strides)
    start: float  # input position of the centre of output pixel 0's field (may be < 0 or x.5)
    output_size: int | None = None  # only when an input size was given


def receptive_field(layers: Sequence[LayerSpec | tuple], input_size: int | None = None) -> list[ReceptiveFieldRow]:
    """Receptive field size, jump and start, layer by layer.

    Recurrences, starting from the input (r = 1, j = 1, start = 0 = centre of pixel 0):
        k_eff = d(k − 1) + 1
        r_out = r_in + (k_eff − 1)·j_in
        j_out = j_in·s
        start_out = start_in + ((k_eff − 1)/2 − p)·j_in
    Output pixel i then sees input pixels start + i·j ± (r − 1)/2.
    Layers are ``LayerSpec`` or tuples (kind, kernel, stride, dilation, padding).
    """
    size, jump, start = 1, 1, 0.0
    current = None if input_size is None else _check_int(input_size, "input_size", 1)
    rows = []
    for spec in layers:
        try:
            layer = spec if isinstance(spec, LayerSpec) else LayerSpec(*spec)
        except TypeError:
            raise ConvSettingError("bad_layer", layer=spec) from None
        if layer.kind not in ("conv", "pool"):
            raise ConvSettingError("bad_layer_kind", kind=layer.kind)
        kernel = _check_int(layer.kernel, "kernel", 1)
        stride = _check_int(layer.stride, "stride", 1)
        dilation = _check_int(layer.dilation, "dilation", 1)
        padding = _check_int(layer.padding, "padding", 0)
        span = effective_kernel(kernel, dilation)
        start = start + ((span - 1) / 2 - padding) * jump
        size = size + (span - 1) * jump
        jump = jump * stride
        if current is not None:
            current = output_size(current, kernel, stride, padding, dilation)
        rows.append(ReceptiveFieldRow(layer, span, size, jump, start, current))
    return rows


# ---------------------------------------------------------------------------------------------
# 7. Real images for the lab (all shipped with installed packages: nothing is downloaded)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleImageInfo:
    name: str
    en: str
    zh: str
    source: str


SAMPLE_IMAGES: dict[str, SampleImageInfo] = {
    info.name: info
    for info in (
        SampleImageInfo(
            "ct_small",
            "CT, small field around a thoracic vertebra (soft-tissue window)",
            "CT 胸椎周围小视野（软组织窗）",
            "pydicom: CT_small.dcm",
        ),
        SampleImageInfo(
            "ct_head",
            "CT, head (brain window)",
            "CT 头颅（脑窗）",
            "pydicom-data: 693_UNCI.dcm",
        ),
        SampleImageInfo(
            "chest_radiograph",
            "Chest radiograph (CR)",
            "胸部 X 线片（CR）",
            "pydicom-data: RG1_UNCI.dcm",
        ),
        SampleImageInfo(
            "leg_radiograph",
            "Lower-leg radiograph (CR), tibial lesion",
            "小腿 X 线片（CR），胫骨病灶",
            "pydicom-data: RG3_UNCI.dcm",
        ),
        SampleImageInfo("mr_shoulder", "MR, shoulder", "肩关节 MR", "pydicom-data: MR2_UNCI.dcm"),
        SampleImageInfo(
            "shepp_logan",
            "Shepp–Logan phantom",
            "Shepp–Logan 体模",
            "scikit-image: shepp_logan_phantom",
        ),
        SampleImageInfo(
            "camera",
            "Photograph (cameraman)",
            "普通照片（摄影师）",
            "scikit-image: camera",
        ),
    )
}

MAX_SIDE = 512  # keeps the teaching conv and the 150 ms slider budget comfortable


def _read_dicom(filename: str):
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file(filename, download=False)
    if path is None:
        raise ConvSettingError("sample_unavailable", file=filename)
    return pydicom.dcmread(path)


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear window to [0, 1]: values below center − width/2 are black, above are white."""
    return np.clip((values - (center - width / 2)) / width, 0.0, 1.0)


def _ct_windowed(filename: str, center: float, width: float) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    ds = _read_dicom(filename)
    hu = apply_modality_lut(ds.pixel_array, ds)  # stored values → Hounsfield units
    return _window(hu, center, width)


def _with_file_window(filename: str) -> np.ndarray:
    """Display the way the file asks: its modality and VOI LUT, MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = _read_dicom(filename)
    values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)
    low, high = values.min(), values.max()
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        # MONOCHROME1: low values are bright (the X-ray film convention).
        scaled = 1.0 - scaled
    return scaled


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average down so the longest side is ≤ max_side (area averaging avoids aliasing)."""
    height, width = image.shape
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    new_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
    return F.interpolate(t, size=new_hw, mode="area")[0, 0].numpy()  # (H', W')


def sample_image(name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """A real 2-D image as float32 in [0, 1], longest side ≤ ``max_side``. Names: SAMPLE_IMAGES."""
    if name == "ct_small":
        image = _ct_windowed("CT_small.dcm", center=40, width=400)
    elif name == "ct_head":
        image = _ct_windowed("693_UNCI.dcm", center=40, width=80)
    elif name == "chest_radiograph":
        image = _with_file_window("RG1_UNCI.dcm")
    elif name == "leg_radiograph":
        image = _with_file_window("RG3_UNCI.dcm")
    elif name == "mr_shoulder":
        image = _with_file_window("MR2_UNCI.dcm")
    elif name in ("shepp_logan", "camera"):
        import skimage.data  # bundled files only: neither of these needs pooch or a download

        raw = skimage.data.shepp_logan_phantom() if name == "shepp_logan" else skimage.data.camera()
        image = raw.astype(np.float64)
        image = image / 255.0 if raw.dtype == np.uint8 else image
    else:
        raise ConvSettingError("unknown_image", name=name, known=sorted(SAMPLE_IMAGES))
    image = _shrink(np.asarray(image, dtype=np.float32), _check_int(max_side, "max_side", 8))
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def sample_pixel_spacing(name: str, max_side: int = MAX_SIDE) -> float | None:
    """Millimetres per pixel of ``sample_image(name, max_side)``, or None when unknown.

    Radiographs state their spacing at the detector (ImagerPixelSpacing); shrinking the image
    for the lab makes each displayed pixel proportionally larger.
    """
    files = {
        "ct_small": "CT_small.dcm",
        "ct_head": "693_UNCI.dcm",
        "chest_radiograph": "RG1_UNCI.dcm",
        "leg_radiograph": "RG3_UNCI.dcm",
        "mr_shoulder": "MR2_UNCI.dcm",
    }
    if name not in SAMPLE_IMAGES:
        raise ConvSettingError("unknown_image", name=name, known=sorted(SAMPLE_IMAGES))
    if name not in files:
        return None
    ds = _read_dicom(files[name])
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = ds.get(keyword)
        # Some files carry 0\0 placeholders: a spacing must be positive to mean anything.
        if spacing and float(spacing[0]) > 0:
            longest = max(int(ds.Rows), int(ds.Columns))
            return float(spacing[0]) * max(1.0, longest / max_side)
    return None


# ---------------------------------------------------------------------------------------------
# 8. The chapter's labs: state, an edited kernel and a layer stack as text, the user's DICOM
# ---------------------------------------------------------------------------------------------

CUSTOM_KERNEL = "custom"  # the kernel choice that reads the editable grid
MIN_SIDE = 8  # smaller uploads have too few pixels for a 5×5 kernel, pooling or statistics
UPLOAD_IMAGE = "upload"  # the image choice that reads the user's own DICOM
BORDERS = ("same", "reflect", "valid")


@register_lab("kernel")
@dataclass
class KernelLab:
    """Lab 1: one kernel on one real image."""

    image: str = "chest_radiograph"  # a picture every radiologist reads at a glance
    kernel: str = "sobel_x"  # an edge detector: the map lights up on rib and heart borders
    custom: str = "1,2,1,0,0,0,-1,-2,-1"  # the editable grid as text, so a link carries it
    border: str = "same"  # zero padding, as CNN layers do


@register_lab("stride")
@dataclass
class StrideLab:
    """Lab 2: stride, padding and dilation on a grid small enough to count."""

    size: int = 7  # a 7×7 input: every cell is visible on a projector
    kernel: int = 3  # the usual CNN kernel
    stride: int = 1
    padding: int = 0  # no padding first: the output shrinks, the first surprise
    dilation: int = 1
    out_row: int = 0  # the output cell whose reads are highlighted
    out_col: int = 0


@register_lab("dotprod")
@dataclass
class DotLab:
    """Lab 3: one output pixel of lab 1's feature map, computed by hand."""

    row: int = 250  # over the right hilum of the default radiograph: vessels give edges
    col: int = 170


@register_lab("actpool")
@dataclass
class ActPoolLab:
    """Lab 4: an activation and a pooling layer on lab 1's feature map; batch normalization."""

    activation: str = "relu"  # the default nonlinearity of modern CNNs
    negative_slope: float = 0.1  # leaky ReLU's slope; 10× torch's default so it is visible
    gain: float = 1.0  # multiplies the map before the activation: large gains show saturation
    pool: str = "max"
    pool_size: int = 2  # 2×2 windows with stride 2 halve each side, the usual choice
    pool_stride: int = 2
    batch: int = 4  # images in the batch-normalization demo


@register_lab("rf")
@dataclass
class FieldLab:
    """Lab 5: receptive field growth through a stack of layers."""

    layers: str = "c3,c3,p2,c3,c3,p2,c3,c3,p2"  # the default model's layout: three VGG-like stages
    across: int = 50  # where the squares are centred, % of the image width
    down: int = 50  # … and % of its height


@register_lab("filters")
@dataclass
class FiltersLab:
    """Lab 6: a trained model's first-layer filters beside the hand-designed ones."""

    model: str = "default"  # the shipped model; "user" is the last run of the training lab
    resolution: str = "model"  # "model": 64×64, the size it was trained on; "full": the lab image
    stage: str = "conv"  # "conv": raw filter output; "relu": after batch norm and ReLU


MAX_KERNEL_WEIGHT = 1000.0  # larger weights only make the colour scale unreadable
_KERNEL_SIDES = {9: 3, 25: 5}


def parse_kernel_text(text: str) -> np.ndarray:
    """ "1,0,-1,2,0,-2,1,0,-1" → a (3, 3) kernel, row by row; 25 numbers give a (5, 5) one.

    Commas, semicolons, spaces or new lines separate the numbers; fractions such as 1/9 work.
    """
    tokens = [token for token in re.split(r"[,;\s]+", str(text).strip()) if token]
    if len(tokens) not in _KERNEL_SIDES:
        raise ConvSettingError("kernel_text_count", count=len(tokens))
    values = []
    for token in tokens:
        try:
            value = float(Fraction(token))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise ConvSettingError("kernel_text_number", token=token[:20]) from None
        if not math.isfinite(value) or abs(value) > MAX_KERNEL_WEIGHT:
            raise ConvSettingError("kernel_text_range", token=token[:20], limit=int(MAX_KERNEL_WEIGHT))
        values.append(value)
    side = _KERNEL_SIDES[len(tokens)]
    return np.array(values, dtype=np.float32).reshape(side, side)  # (k, k)


def kernel_text(weights: np.ndarray) -> str:
    """The compact text of a kernel; weights that are simple fractions stay exact ("1/9")."""
    parts = []
    for value in np.asarray(weights, dtype=np.float64).ravel():
        fraction = Fraction(value).limit_denominator(256)
        parts.append(str(fraction) if abs(float(fraction) - value) < 1e-6 else f"{value:.4g}")
    return ",".join(parts)


def apply_table_changes(rows: list[dict], changes: dict) -> list[dict]:
    """Apply a table editor's change record to rows: ``edited_rows`` ({row: {column: value}}),
    then ``deleted_rows`` (row numbers), then ``added_rows`` (new rows, possibly partial)."""
    rows = [dict(row) for row in rows]
    for index, edits in changes.get("edited_rows", {}).items():
        rows[int(index)].update(edits)
    deleted = {int(i) for i in changes.get("deleted_rows", [])}
    rows = [row for i, row in enumerate(rows) if i not in deleted]
    return rows + [dict(row) for row in changes.get("added_rows", [])]


def edited_kernel(weights: np.ndarray, changes: dict) -> np.ndarray:
    """A kernel after edits in a grid whose columns are named "0", "1", …; blanks become 0."""
    rows = [{str(c): float(v) for c, v in enumerate(line)} for line in np.asarray(weights)]
    rows = apply_table_changes(rows, {"edited_rows": changes.get("edited_rows", {})})
    values = [[0.0 if row[str(c)] is None else float(row[str(c)]) for c in range(len(rows))] for row in rows]
    return np.clip(np.asarray(values, dtype=np.float32), -MAX_KERNEL_WEIGHT, MAX_KERNEL_WEIGHT)


def resize_kernel(weights: np.ndarray, side: int) -> np.ndarray:
    """Grow a kernel with a ring of zeros, or keep its centre, to make it side × side."""
    weights = np.asarray(weights, dtype=np.float32)
    current = weights.shape[0]
    if side >= current:
        ring = (side - current) // 2
        return np.pad(weights, ring)
    cut = (current - side) // 2
    return weights[cut : cut + side, cut : cut + side].copy()


_LAYER_TOKEN = re.compile(r"^(?P<kind>[cp])(?P<kernel>\d{1,2})(?:s(?P<stride>\d))?(?:d(?P<dilation>\d))?$")
MAX_LAYERS = 12  # deep enough to show growth, small enough for one table
LAYER_LIMITS = {"kernel": (1, 11), "stride": (1, 4), "dilation": (1, 8)}


def parse_layers(text: str) -> list[LayerSpec]:
    """ "c3,c3s2,c3d2,p2" → layers: conv or pool, kernel, optional stride (s) and dilation (d).

    Convolutions get "same" padding d(k − 1)/2, as CNNs usually do; pooling gets none and a
    stride equal to its window unless one is given, as in torch.
    """
    tokens = [token for token in re.split(r"[,;\s]+", str(text).strip().lower()) if token]
    if not tokens:
        raise ConvSettingError("layers_empty")
    if len(tokens) > MAX_LAYERS:
        raise ConvSettingError("layers_too_many", count=len(tokens), limit=MAX_LAYERS)
    layers = []
    for token in tokens:
        match = _LAYER_TOKEN.match(token)
        if match is None:
            raise ConvSettingError("layer_token", token=token[:20])
        kind = "conv" if match["kind"] == "c" else "pool"
        kernel = int(match["kernel"])
        stride = int(match["stride"] or (1 if kind == "conv" else kernel))
        dilation = int(match["dilation"] or 1)
        for name, value in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
            low, high = LAYER_LIMITS[name]
            if not low <= value <= high:
                raise ConvSettingError("layer_range", token=token[:20], name=name, low=low, high=high)
        padding = dilation * (kernel - 1) // 2 if kind == "conv" else 0
        layers.append(LayerSpec(kind, kernel, stride, dilation, padding))
    return layers


def layers_from_rows(rows: Sequence[dict]) -> list[LayerSpec]:
    """Layers from table rows {kind, kernel, stride, dilation}; blanks take the usual defaults
    (a 3×3 convolution, stride 1, or a pool striding by its window), out-of-range values the
    nearest allowed one."""

    def number(value, default: int, name: str) -> int:
        low, high = LAYER_LIMITS[name]
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return default if missing else min(max(int(value), low), high)

    layers = []
    for row in rows:
        kind = row.get("kind") if row.get("kind") in ("conv", "pool") else "conv"
        kernel = number(row.get("kernel"), 3 if kind == "conv" else 2, "kernel")
        stride = number(row.get("stride"), 1 if kind == "conv" else kernel, "stride")
        dilation = number(row.get("dilation"), 1, "dilation")
        padding = dilation * (kernel - 1) // 2 if kind == "conv" else 0
        layers.append(LayerSpec(kind, kernel, stride, dilation, padding))
    return layers


def layer_output_sizes(layers: Sequence[LayerSpec], input_size: int) -> list[int | None]:
    """Each layer's output size on an input of ``input_size``; None from the layer that no longer
    fits onward (a stack can shrink a small image to nothing)."""
    sizes: list[int | None] = []
    current: int | None = input_size
    for layer in layers:
        try:
            current = (
                None
                if current is None
                else output_size(current, layer.kernel, layer.stride, layer.padding, layer.dilation)
            )
        except ConvSettingError:
            current = None
        sizes.append(current)
    return sizes


def layers_text(layers: Sequence[LayerSpec]) -> str:
    """The inverse of ``parse_layers`` (defaults left out)."""
    parts = []
    for layer in layers:
        token = ("c" if layer.kind == "conv" else "p") + str(layer.kernel)
        default_stride = 1 if layer.kind == "conv" else layer.kernel
        token += f"s{layer.stride}" if layer.stride != default_stride else ""
        token += f"d{layer.dilation}" if layer.dilation != 1 else ""
        parts.append(token)
    return ",".join(parts)


def feature_map_step(image: np.ndarray, kernel: np.ndarray, row: int, col: int, border: str = "same") -> DotProduct:
    """The dot product behind pixel (row, col) of ``apply_kernel(image, kernel, border)``.

    "same" pads with zeros, "valid" does not pad, "reflect" mirrors the image; for reflect the
    taps that fall outside the image are marked in ``padding_mask`` but carry mirrored values.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw = kernel.shape
    if border not in BORDERS:
        raise ConvSettingError("bad_padding", name="border", value=border)
    if border == "valid":
        return dot_product_at(image, kernel, row, col)
    pad_top, pad_left = (kh - 1) // 2, (kw - 1) // 2
    if border == "same" and kh % 2 and kw % 2:
        return dot_product_at(image, kernel, row, col, padding=(pad_top, pad_left))
    mode = "constant" if border == "same" else "reflect"
    padded = np.pad(np.asarray(image, dtype=np.float64), ((pad_top, kh // 2), (pad_left, kw // 2)), mode=mode)
    step = dot_product_at(padded, kernel, row, col)
    positions = step.positions - np.array([pad_top, pad_left])  # back to the image's frame
    height, width = np.shape(image)
    outside = (positions[..., 0] < 0) | (positions[..., 0] >= height)
    outside |= (positions[..., 1] < 0) | (positions[..., 1] >= width)
    return DotProduct(step.patch, step.kernel, step.products, step.total, positions, outside)


def shrink(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Area-average a 2-D image down so its longest side is ≤ ``max_side``."""
    return _shrink(np.asarray(image, dtype=np.float32), _check_int(max_side, "max_side", 8))


def image_from_dicom(dicom_image, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float | None]:
    """A ``primer.dicom.DicomImage`` as the lab's (H, W) float32 image in [0, 1], and its mm/pixel.

    The middle frame of a multi-frame file; the file's own window (else the 1st–99th percentile
    window); MONOCHROME1 inverted so bone is bright; colour reduced to luminance.
    """
    from primer import dicom

    frame = dicom_image.pixels[dicom_image.n_frames // 2]
    if min(frame.shape[:2]) < MIN_SIDE:
        raise ConvSettingError("image_too_small", height=frame.shape[0], width=frame.shape[1], kernel=MIN_SIDE)
    if dicom_image.is_color:
        luma = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        image = frame.astype(np.float32) @ luma / 255.0  # (H, W, 3) → (H, W)
    else:
        windows = [w[:2] for w in dicom_image.file_windows] + [dicom.auto_window(frame)]
        for center, width in windows:
            try:
                image = dicom.apply_window(frame, center, width)
                break
            except dicom.DicomError:  # a file window of width < 1: fall back to the next one
                continue
        if dicom_image.invert_for_display:
            image = 1.0 - image
    longest = max(image.shape)
    image = shrink(image, max_side)
    spacing = None
    if dicom_image.pixel_spacing is not None:
        spacing = float(dicom_image.pixel_spacing[0]) * max(1.0, longest / max_side)
    return np.clip(image, 0.0, 1.0).astype(np.float32), spacing


# ---------------------------------------------------------------------------------------------
# 9. Learned filters
# ---------------------------------------------------------------------------------------------

MODEL_SIDE = 64  # the default model was trained on 64×64 images
CLASSIC_3X3 = tuple(name for name, k in KERNELS.items() if k.weights.shape == (3, 3))


def first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    """The network's first convolution: the only layer that looks at pixels directly."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module
    raise ConvSettingError("no_conv")


def _first_block(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The first convolution and what follows it up to its first ReLU (e.g. conv → BN → ReLU).

    Read from the module tree rather than with forward hooks, because the default model is
    shared read-only by every session and hooks on it would fire in other users' passes.
    """
    conv = first_conv(model)
    for module in model.modules():
        children = list(module.children())
        if isinstance(module, torch.nn.Sequential) and children and children[0] is conv:
            block = [conv]
            for child in children[1:]:
                block.append(child)
                if isinstance(child, torch.nn.ReLU):
                    return block
            return block
    return [conv]


def model_input(image: np.ndarray, side: int | None = MODEL_SIDE) -> torch.Tensor:
    """The lab image as the model sees it: side × side (None: as is), standardized as in training."""
    from primer.train import standardize

    image = np.asarray(image, dtype=np.float32)
    if side is not None:
        t = torch.from_numpy(np.ascontiguousarray(image))[None, None]  # (1, 1, H, W)
        mode = "area" if min(image.shape) >= side else "bilinear"
        t = F.interpolate(t, size=(side, side), mode=mode)  # (1, 1, side, side)
        image = t[0, 0].numpy()
    return standardize(image[None])  # (1, 1, H, W), zero mean and unit variance


def first_layer_maps(model: torch.nn.Module, x: torch.Tensor, stage: str = "conv") -> np.ndarray:
    """(C, H, W) first-layer feature maps of ``x`` (1, 1, H, W): the convolution alone, or
    after the layers that follow it up to the first ReLU (``stage="relu"``)."""
    if stage not in ("conv", "relu"):
        raise ConvSettingError("bad_stage", stage=stage)
    block = _first_block(model)[: 1 if stage == "conv" else None]
    with torch.no_grad():
        y = x
        for layer in block:
            y = layer(y)  # eval mode: batch norm uses its running statistics, nothing changes
    return y[0].numpy()  # (C, H, W)


@dataclass(frozen=True)
class FilterReport:
    """What training did to the first-layer kernels, in numbers."""

    weights: np.ndarray  # (C, kh, kw) learned kernels (first input channel)
    initial: np.ndarray | None  # (C, kh, kw) the same kernels before training, when known
    change: np.ndarray | None  # (C,) ‖learned − initial‖ / ‖initial‖
    init_correlation: np.ndarray | None  # (C,) Pearson r of learned vs initial weights
    weight_sum: np.ndarray  # (C,) Σ w: ≈ 0 for an edge detector, large for a smoother
    nearest: tuple[str, ...]  # the most similar hand-designed 3×3 kernel, per filter
    similarity: np.ndarray  # (C,) |cosine| to it: 1 = same shape (up to scale and sign)


def filter_weights(model: torch.nn.Module) -> np.ndarray:
    """(C_out, kh, kw): the first layer's kernels for its first input channel."""
    return first_conv(model).weight.detach()[:, 0].numpy().copy()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


def filter_report(weights: np.ndarray, initial: np.ndarray | None = None) -> FilterReport:
    """Compare learned kernels with their starting values and with the classic 3×3 kernels."""
    weights = np.asarray(weights, dtype=np.float64)  # (C, kh, kw)
    change = correlation = None
    if initial is not None:
        initial = np.asarray(initial, dtype=np.float64)
        flat_w, flat_0 = weights.reshape(len(weights), -1), initial.reshape(len(initial), -1)  # (C, kh·kw)
        change = np.linalg.norm(flat_w - flat_0, axis=1) / np.maximum(np.linalg.norm(flat_0, axis=1), 1e-12)
        correlation = np.array([np.corrcoef(w, w0)[0, 1] for w, w0 in zip(flat_w, flat_0, strict=True)])
    nearest, similarity = [], []
    for w in weights:
        if w.shape != (3, 3):
            nearest.append("")
            similarity.append(0.0)
            continue
        scores = {name: abs(_cosine(w, KERNELS[name].weights)) for name in CLASSIC_3X3}
        best = max(scores, key=scores.get)
        nearest.append(best)
        similarity.append(scores[best])
    return FilterReport(
        weights=weights,
        initial=initial,
        change=change,
        init_correlation=correlation,
        weight_sum=weights.sum(axis=(1, 2)),
        nearest=tuple(nearest),
        similarity=np.array(similarity),
    )


def starting_filters(train_lab, num_classes: int) -> np.ndarray:
    """The first-layer kernels a training run started from: the seeded initialisation that
    ``primer.train`` uses (or the default model's weights when the run fine-tuned it)."""
    from primer.train import build_model, pretrained_state

    model = build_model(train_lab, num_classes)
    if getattr(train_lab, "init", "scratch") == "pretrained":
        model.load_state_dict(pretrained_state(train_lab, num_classes))
    return filter_weights(model)


def classic_maps(x: torch.Tensor, names: Sequence[str] = CLASSIC_3X3) -> np.ndarray:
    """(len(names), H, W) the hand-designed kernels on the same standardized input (1, 1, H, W)."""
    image = x[0, 0].numpy()
    return np.stack([apply_kernel(image, name, "same") for name in names])


def learned_and_classic_maps(
    model: torch.nn.Module, image: np.ndarray, resolution: str = "model", stage: str = "conv"
) -> tuple[np.ndarray, np.ndarray]:
    """The model's first-layer maps and the classic kernels' maps on the same input: the image
    resized to the model's 64×64 and standardized (``resolution="model"``), or at full size."""
    if resolution not in ("model", "full"):
        raise ConvSettingError("bad_resolution", resolution=resolution)
    x = model_input(image, MODEL_SIDE if resolution == "model" else None)
    return first_layer_maps(model, x, stage), classic_maps(x)


# Channels of the batch-normalization demo: three very different scales of response.
BN_CHANNELS = ("identity", "sobel_x", "laplacian")
BN_SIDE = 64  # small maps: the statistics, not the pixels, are the point


def batch_feature_maps(images: Sequence[np.ndarray], side: int = BN_SIDE) -> np.ndarray:
    """(N, 3, side, side): each image resized, then filtered by the ``BN_CHANNELS`` kernels."""
    batch = []
    for image in images:
        t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
        small = F.interpolate(t, size=(side, side), mode="area")[0, 0].numpy()  # (side, side)
        batch.append(np.stack([apply_kernel(small, name, "reflect") for name in BN_CHANNELS]))
    return np.stack(batch)  # (N, C, side, side)
