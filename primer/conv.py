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

Settings a user can make impossible (a kernel larger than the padded image, a stride of 0)
raise ``ConvSettingError`` with a stable ``code`` so the page can show a translated message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view


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
        raise ConvSettingError("kernel_too_large", input_size=(height, width), kernel=(kh, kw))

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
