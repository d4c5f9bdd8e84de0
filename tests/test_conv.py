"""primer.conv against independent oracles: torch's own ops, SciPy, brute force, hand computation."""

import math

import numpy as np
import pydicom
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from pydicom.data import get_testdata_file

from primer import conv
from primer.conv import ConvSettingError


def _random_valid_setting(rng: np.random.Generator) -> dict:
    """Random (kernel, stride, padding, dilation, size) per axis with a non-empty output."""
    setting = {}
    for axis in ("h", "w"):
        kernel = int(rng.integers(1, 6))
        dilation = int(rng.integers(1, 4))
        padding = int(rng.integers(0, 4))
        stride = int(rng.integers(1, 4))
        span = dilation * (kernel - 1) + 1
        size = int(rng.integers(max(1, span - 2 * padding), span - 2 * padding + 14))
        setting[axis] = (kernel, stride, padding, dilation, size)
    return setting


# ---------------------------------------------------------------------------------------------
# conv2d and im2col vs torch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [(np.float64, 1e-10), (np.float32, 2e-4)],
    ids=["float64", "float32"],
)
def test_conv2d_matches_torch_over_random_settings(dtype, tolerance):
    rng = np.random.default_rng(20210501)
    for case in range(150):
        s = _random_valid_setting(rng)
        (kh, sh, ph, dh, height), (kw, sw, pw, dw, width) = s["h"], s["w"]
        n_images, c_in, c_out = (int(v) for v in rng.integers(1, 4, size=3))
        x = rng.standard_normal((n_images, c_in, height, width)).astype(dtype)
        weight = rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype)
        bias = rng.standard_normal(c_out).astype(dtype) if case % 2 else None
        # Half the cases use ints, half use pairs, as torch allows both.
        square = kh == kw and sh == sw and ph == pw and dh == dw and case % 3 == 0
        settings = (
            {"stride": sh, "padding": ph, "dilation": dh}
            if square
            else {"stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw)}
        )

        expected = F.conv2d(
            torch.from_numpy(x),
            torch.from_numpy(weight),
            None if bias is None else torch.from_numpy(bias),
            **settings,
        ).numpy()
        actual = conv.conv2d(x, weight, bias, **settings)
        assert actual.dtype == dtype
        assert actual.shape == expected.shape, (case, s)
        np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance)


def test_conv2d_accepts_2d_and_3d_inputs():
    rng = np.random.default_rng(1)
    image = rng.random((9, 11))
    kernel = rng.random((3, 3))
    reference = F.conv2d(
        torch.from_numpy(image)[None, None],
        torch.from_numpy(kernel)[None, None],
        padding=1,
    )[0, 0].numpy()
    np.testing.assert_allclose(conv.conv2d(image, kernel, padding=1), reference, atol=1e-12)

    weight = rng.random((4, 1, 3, 3))  # four output channels from a 2-D image
    out = conv.conv2d(image, weight, stride=2)
    assert out.shape == (4, 4, 5)

    volume = rng.random((2, 9, 11))  # (C, H, W)
    weight = rng.random((5, 2, 3, 3))
    expected = F.conv2d(torch.from_numpy(volume)[None], torch.from_numpy(weight))[0].numpy()
    np.testing.assert_allclose(conv.conv2d(volume, weight), expected, atol=1e-12)


def test_im2col_matches_torch_unfold():
    rng = np.random.default_rng(7)
    for _ in range(40):
        s = _random_valid_setting(rng)
        (kh, sh, ph, dh, height), (kw, sw, pw, dw, width) = s["h"], s["w"]
        x = rng.standard_normal((2, 3, height, width))
        expected = F.unfold(
            torch.from_numpy(x),
            (kh, kw),
            dilation=(dh, dw),
            padding=(ph, pw),
            stride=(sh, sw),
        )  # (N, C·kh·kw, L)
        actual = conv.im2col(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        np.testing.assert_array_equal(actual, expected.transpose(1, 2).numpy())


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"stride": 0}, "bad_stride"),
        ({"stride": 1.5}, "bad_stride"),
        ({"padding": -1}, "bad_padding"),
        ({"dilation": 0}, "bad_dilation"),
        ({"dilation": 4}, "kernel_too_large"),  # span 9 > 6 on a 6×6 image
    ],
)
def test_conv2d_bad_settings_raise_coded_errors(kwargs, code):
    with pytest.raises(ConvSettingError) as error:
        conv.conv2d(np.zeros((6, 6)), np.ones((3, 3)), **kwargs)
    assert error.value.code == code


def test_conv2d_channel_mismatch_is_a_coded_error():
    with pytest.raises(ConvSettingError) as error:
        conv.conv2d(np.zeros((3, 6, 6)), np.ones((2, 2, 3, 3)))
    assert error.value.code == "channel_mismatch"
    assert error.value.detail == {"input_channels": 3, "kernel_channels": 2}


# ---------------------------------------------------------------------------------------------
# output size
# ---------------------------------------------------------------------------------------------


def _evaluate_formula(text: str) -> tuple[int, int]:
    """Evaluate the left side of an explained formula by hand; return (left, right)."""
    left, right = text.split(" = ")
    python = left.replace("⌊", "math.floor(").replace("⌋", ")")
    python = python.replace("·", "*").replace("−", "-")
    return eval(python, {"math": math}), int(right)


def test_output_size_explained_known_example():
    assert conv.output_size_explained(7, 3, 2, 1, 1) == "⌊(7 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 4"


def test_output_size_matches_torch_conv_and_pool_shapes():
    checked_pool = 0
    for n in range(1, 12):
        for kernel in range(1, 6):
            for stride in range(1, 4):
                for padding in range(3):
                    for dilation in range(1, 4):
                        x = torch.zeros(1, 1, n, n)
                        w = torch.zeros(1, 1, kernel, kernel)
                        args = (n, kernel, stride, padding, dilation)
                        span = dilation * (kernel - 1) + 1
                        if span > n + 2 * padding:
                            with pytest.raises(RuntimeError):
                                F.conv2d(
                                    x,
                                    w,
                                    stride=stride,
                                    padding=padding,
                                    dilation=dilation,
                                )
                            with pytest.raises(ConvSettingError) as error:
                                conv.output_size(*args)
                            assert error.value.code == "kernel_too_large"
                            assert error.value.detail["effective_kernel"] == span
                            with pytest.raises(ConvSettingError):
                                conv.output_size_explained(*args)
                            continue
                        torch_size = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).shape[-1]
                        assert conv.output_size(*args) == torch_size, args
                        assert _evaluate_formula(conv.output_size_explained(*args)) == (
                            torch_size,
                            torch_size,
                        )
                        # torch only pools with padding up to half the (undilated) window
                        if 2 * padding <= kernel:
                            pooled = F.max_pool2d(
                                x,
                                kernel,
                                stride=stride,
                                padding=padding,
                                dilation=dilation,
                            )
                            assert conv.output_size(*args) == pooled.shape[-1], args
                            checked_pool += 1
    assert checked_pool > 500


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((0, 3), "bad_input_size"),
        ((5, 0), "bad_kernel"),
        ((5, 3, 0), "bad_stride"),
        ((5, 3, -2), "bad_stride"),
        ((5, 3, 1, -1), "bad_padding"),
        ((5, 3, 1, 0, 0), "bad_dilation"),
        ((5, 7), "kernel_too_large"),
        ((5, 3, 1, 0, 3), "kernel_too_large"),
    ],
)
def test_output_size_invalid_settings(args, code):
    with pytest.raises(ConvSettingError) as error:
        conv.output_size_explained(*args)
    assert error.value.code == code


# ---------------------------------------------------------------------------------------------
# reads map and one dot product
# ---------------------------------------------------------------------------------------------


def _reads_by_one_hot(size_hw, kernel_hw, stride, dilation, padding):
    """Brute force with torch: convolve every one-hot padded image with every one-hot tap.

    hit[position, tap, i, j] = 1 exactly when output (i, j) reads `position` through `tap`.
    """
    (height, width), (kh, kw) = size_hw, kernel_hw
    padded_h, padded_w = height + 2 * padding[0], width + 2 * padding[1]
    positions = torch.eye(padded_h * padded_w, dtype=torch.float64)
    images = positions.reshape(-1, 1, padded_h, padded_w)  # (P, 1, Hp, Wp)
    taps = torch.eye(kh * kw, dtype=torch.float64)
    taps = taps.reshape(-1, 1, kh, kw)  # (T, 1, kh, kw)
    return F.conv2d(images, taps, stride=stride, dilation=dilation)  # (P, T, H', W')


def test_reads_map_matches_one_hot_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(25):
        s = _random_valid_setting(rng)
        (kh, sh, ph, dh, height), (kw, sw, pw, dw, width) = s["h"], s["w"]
        height, width = min(height, 9), min(width, 9)
        if dh * (kh - 1) + 1 > height + 2 * ph or dw * (kw - 1) + 1 > width + 2 * pw:
            continue
        reads = conv.reads_map((height, width), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        hits = _reads_by_one_hot((height, width), (kh, kw), (sh, sw), (dh, dw), (ph, pw)).numpy()
        assert reads.output_shape == hits.shape[2:]
        padded_w = width + 2 * pw
        for i in range(hits.shape[2]):
            for j in range(hits.shape[3]):
                cells = reads.cells(i, j)  # (kh, kw, 2)
                for tap in range(kh * kw):
                    (position,) = np.flatnonzero(hits[:, tap, i, j])
                    row, col = divmod(position, padded_w)
                    a, b = divmod(tap, kw)
                    assert tuple(cells[a, b]) == (row - ph, col - pw)
                    expect_padding = not (ph <= row < ph + height and pw <= col < pw + width)
                    assert reads.padding_mask(i, j)[a, b] == expect_padding
        counts = hits.sum(axis=(1, 2, 3)).reshape(height + 2 * ph, padded_w)
        np.testing.assert_array_equal(reads.read_counts(), counts)


def test_read_counts_show_cells_skipped_by_stride():
    # kernel 2, stride 3: each cell is read once, except every third row and column, never
    reads = conv.reads_map(9, 2, 3)
    np.testing.assert_array_equal(reads.read_counts()[0], [1, 1, 0] * 3)
    np.testing.assert_array_equal(reads.read_counts()[2], 0)


def test_dot_product_equals_conv_output_at_every_position():
    rng = np.random.default_rng(11)
    for _ in range(12):
        s = _random_valid_setting(rng)
        (kh, sh, ph, dh, height), (kw, sw, pw, dw, width) = s["h"], s["w"]
        image = rng.standard_normal((height, width))
        kernel = rng.standard_normal((kh, kw))
        settings = {"stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw)}
        expected = F.conv2d(
            torch.from_numpy(image)[None, None],
            torch.from_numpy(kernel)[None, None],
            **settings,
        )[0, 0].numpy()
        padded = np.pad(image, ((ph, ph), (pw, pw)))
        for i in range(expected.shape[0]):
            for j in range(expected.shape[1]):
                step = conv.dot_product_at(image, kernel, i, j, **settings)
                assert step.total == pytest.approx(expected[i, j], abs=1e-10)
                np.testing.assert_allclose(step.products, step.patch * kernel)
                # the patch is the dilated window of the padded image, read by hand
                window = padded[i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                                j * sw : j * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
                np.testing.assert_array_equal(step.patch, window)
                assert np.all(step.patch[step.padding_mask] == 0)


def test_dot_product_outside_the_output_is_a_coded_error():
    with pytest.raises(ConvSettingError) as error:
        conv.dot_product_at(np.zeros((5, 5)), np.ones((3, 3)), 3, 0)
    assert error.value.code == "bad_position"


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------


def test_kernel_registry_is_complete_and_bilingual():
    expected = {"identity", "box_blur", "gaussian_3x3", "gaussian_5x5", "sharpen",
                "sobel_x", "sobel_y", "laplacian", "emboss"}  # fmt: skip
    assert set(conv.KERNELS) == expected
    for name, kernel in conv.KERNELS.items():
        assert kernel.name == name
        assert kernel.weights.dtype == np.float32
        assert kernel.weights.ndim == 2 and kernel.weights.shape[0] % 2 == 1
        assert not kernel.weights.flags.writeable
        assert len(kernel.en) > 20
        assert any("\u4e00" <= ch <= "\u9fff" for ch in kernel.zh)
    assert conv.KERNELS["gaussian_5x5"].weights.shape == (5, 5)


def test_kernels_known_answers():
    rows, cols = np.mgrid[0:20, 0:20].astype(np.float64)
    inner = (slice(3, -3), slice(3, -3))
    constant = np.full((20, 20), 0.7)
    ramp_x = 0.5 * cols  # brightness rising to the right
    ramp_y = 0.25 * rows
    quadratic = cols**2 + rows**2  # Laplacian = 2 + 2

    def filtered(image, name):
        return conv.apply_kernel(image, name, padding="reflect").astype(np.float64)

    for name in (
        "identity",
        "box_blur",
        "gaussian_3x3",
        "gaussian_5x5",
        "sharpen",
        "emboss",
    ):
        # weights summing to 1 keep flat regions unchanged
        np.testing.assert_allclose(filtered(constant, name), constant, atol=1e-5)
    for name in ("sobel_x", "sobel_y", "laplacian"):
        np.testing.assert_allclose(filtered(constant, name), 0, atol=1e-5)
    np.testing.assert_allclose(filtered(ramp_x, "identity"), ramp_x, atol=1e-5)
    # Sobel: slope × (1 + 2 + 1) × 2 cells apart = 8 × slope, along its own axis only
    np.testing.assert_allclose(filtered(ramp_x, "sobel_x")[inner], 8 * 0.5, atol=1e-4)
    np.testing.assert_allclose(filtered(ramp_x, "sobel_y")[inner], 0, atol=1e-4)
    np.testing.assert_allclose(filtered(ramp_y, "sobel_y")[inner], 8 * 0.25, atol=1e-4)
    np.testing.assert_allclose(filtered(quadratic, "laplacian")[inner], 4, atol=1e-3)
    # smoothing a linear ramp with a symmetric kernel leaves it unchanged in the interior
    np.testing.assert_allclose(filtered(ramp_x, "gaussian_5x5")[inner], ramp_x[inner], atol=1e-4)


@pytest.mark.parametrize("name", sorted(conv.KERNELS))
def test_apply_kernel_matches_scipy(name):
    image = np.random.default_rng(5).random((40, 33)).astype(np.float32)
    weights = conv.KERNELS[name].weights.astype(np.float64)
    same = scipy.ndimage.correlate(image.astype(np.float64), weights, mode="constant", cval=0.0)
    reflect = scipy.ndimage.correlate(image.astype(np.float64), weights, mode="mirror")
    half = weights.shape[0] // 2
    np.testing.assert_allclose(conv.apply_kernel(image, name), same, atol=1e-5)
    np.testing.assert_allclose(conv.apply_kernel(image, name, "reflect"), reflect, atol=1e-5)
    valid = conv.apply_kernel(image, weights, "valid")
    np.testing.assert_allclose(valid, same[half:-half, half:-half], atol=1e-5)
    # the teaching convolution agrees with the fast one
    np.testing.assert_allclose(conv.conv2d(image, weights, padding=half), same, atol=1e-5)


def test_apply_kernel_keeps_size_for_even_kernels_and_rejects_unknown_names():
    assert conv.apply_kernel(np.zeros((10, 12)), np.ones((2, 4))).shape == (10, 12)
    with pytest.raises(ConvSettingError) as error:
        conv.apply_kernel(np.zeros((10, 12)), "no_such_kernel")
    assert error.value.code == "unknown_kernel"


# ---------------------------------------------------------------------------------------------
# activations, pooling, batch norm
# ---------------------------------------------------------------------------------------------


def test_activations_match_closed_forms():
    x = np.linspace(-5, 5, 101)
    sigmoid = 1 / (1 + np.exp(-x))
    closed = {
        "relu": (np.maximum(x, 0), (x > 0).astype(float)),
        "leaky_relu": (np.where(x > 0, x, 0.2 * x), np.where(x > 0, 1.0, 0.2)),
        "sigmoid": (sigmoid, sigmoid * (1 - sigmoid)),
        "tanh": (np.tanh(x), 1 - np.tanh(x) ** 2),
    }
    assert set(closed) == set(conv.ACTIVATIONS)
    for name, (value, slope) in closed.items():
        np.testing.assert_allclose(conv.activate(x, name, negative_slope=0.2), value, atol=1e-12)
        curve = conv.activation_curve(name, -5, 5, 101, negative_slope=0.2)
        np.testing.assert_allclose(curve.x, x, atol=1e-12)
        np.testing.assert_allclose(curve.y, value, atol=1e-12)
        away_from_kink = np.abs(x) > 1e-9
        np.testing.assert_allclose(curve.slope[away_from_kink], slope[away_from_kink], atol=1e-12)


def _pool_by_loops(image, kind, size, stride):
    out_h = (image.shape[0] - size) // stride + 1
    out_w = (image.shape[1] - size) // stride + 1
    reduce = np.max if kind == "max" else np.mean
    return np.array(
        [[reduce(image[i * stride : i * stride + size, j * stride : j * stride + size])
          for j in range(out_w)] for i in range(out_h)]
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d_matches_loops(kind):
    rng = np.random.default_rng(9)
    for size, stride in [(2, None), (3, 2), (2, 1), (3, 3), (4, 2)]:
        image = rng.standard_normal((13, 10))
        result = conv.pool2d(image, kind, size, stride)
        expected = _pool_by_loops(image, kind, size, stride or size)
        np.testing.assert_allclose(result.output, expected, atol=1e-12)
        assert result.output_hw == expected.shape
        assert result.explained[0].endswith(f"= {expected.shape[0]}")
        batch = rng.standard_normal((2, 3, 13, 10))
        assert conv.pool2d(batch, kind, size, stride).output.shape == (2, 3) + expected.shape


def test_pool2d_rejects_a_window_larger_than_the_image():
    with pytest.raises(ConvSettingError) as error:
        conv.pool2d(np.zeros((3, 3)), "max", 4)
    assert error.value.code == "kernel_too_large"
    with pytest.raises(ConvSettingError) as error:
        conv.pool2d(np.zeros((3, 3)), "median", 2)
    assert error.value.code == "bad_pool_kind"


def test_batchnorm_demo_matches_hand_computation():
    rng = np.random.default_rng(2)
    maps = rng.normal(loc=[3.0, -1.0, 0.0], scale=[2.0, 0.5, 5.0], size=(4, 6, 5, 3))
    maps = maps.transpose(0, 3, 1, 2)  # (N, C, H, W) with very different channel scales
    demo = conv.batchnorm_demo(maps, eps=1e-5)

    mean = maps.mean(axis=(0, 2, 3))
    var = ((maps - mean[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    by_hand = (maps - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(demo.output, by_hand, atol=1e-10)
    np.testing.assert_allclose(demo.mean_before, mean, atol=1e-12)
    np.testing.assert_allclose(demo.var_before, var, atol=1e-12)
    np.testing.assert_allclose(demo.mean_after, 0, atol=1e-10)
    np.testing.assert_allclose(demo.var_after, var / (var + 1e-5), atol=1e-10)
    # running statistics move 10% of the way from (0, 1) using the unbiased variance
    count = maps.shape[0] * maps.shape[2] * maps.shape[3]
    np.testing.assert_allclose(demo.running_mean, 0.1 * mean, atol=1e-12)
    np.testing.assert_allclose(demo.running_var, 0.9 + 0.1 * var * count / (count - 1), atol=1e-10)


# ---------------------------------------------------------------------------------------------
# receptive field
# ---------------------------------------------------------------------------------------------


def _gradient_extent(layers, input_size):
    """Brute force: all-ones stack, gradient of the centre output pixel w.r.t. the input.

    Returns the output pixel used and the (first, last) input row with a non-zero gradient.
    """
    x = torch.ones(1, 1, input_size, input_size, dtype=torch.float64, requires_grad=True)
    y = x
    for kind, kernel, stride, dilation, padding in layers:
        if kind == "pool" and dilation == 1 and 2 * padding <= kernel:
            y = F.avg_pool2d(y, kernel, stride, padding)
        else:
            # a dilated window (or a conv) with positive weights has the same footprint
            ones = torch.ones(1, 1, kernel, kernel, dtype=torch.float64)
            y = F.conv2d(y, ones, stride=stride, padding=padding, dilation=dilation)
    centre = y.shape[-1] // 2
    y[0, 0, centre, centre].backward()
    grad = x.grad[0, 0]
    rows = torch.nonzero(grad.abs().sum(dim=1)).flatten()
    cols = torch.nonzero(grad.abs().sum(dim=0)).flatten()
    assert (rows.min(), rows.max()) == (cols.min(), cols.max())  # square settings
    return centre, int(rows.min()), int(rows.max())


def test_receptive_field_matches_gradient_brute_force():
    rng = np.random.default_rng(42)
    checked = 0
    while checked < 40:
        layers = []
        for _ in range(int(rng.integers(1, 5))):
            kind = "conv" if rng.random() < 0.6 else "pool"
            kernel = int(rng.integers(1, 5))
            layers.append(
                (kind, kernel, int(rng.integers(1, 3)), int(rng.integers(1, 3)),
                 int(rng.integers(0, kernel // 2 + 2)))
            )  # fmt: skip
        rows = conv.receptive_field(layers)
        size, jump, start = rows[-1].size, rows[-1].jump, rows[-1].start
        input_size = 2 * size + 4 * jump + 12
        # the stack's output size must be positive; the calculator reports it per layer too
        try:
            output_len = conv.receptive_field(layers, input_size)[-1].output_size
        except ConvSettingError:
            continue
        centre, first, last = _gradient_extent(layers, input_size)
        assert output_len // 2 == centre
        low = start + centre * jump - (size - 1) / 2
        high = start + centre * jump + (size - 1) / 2
        assert low >= 0 and high <= input_size - 1, "test input too small for this stack"
        assert (first, last) == (low, high), layers
        assert last - first + 1 == size
        checked += 1


def test_receptive_field_of_a_vgg_like_stack():
    vgg = [("conv", 3, 1, 1, 1), ("conv", 3, 1, 1, 1), ("pool", 2, 2, 1, 0),
           ("conv", 3, 1, 1, 1), ("conv", 3, 1, 1, 1), ("pool", 2, 2, 1, 0)]  # fmt: skip
    rows = conv.receptive_field(vgg, input_size=64)
    # by hand: 1+2=3, +2=5, +1=6 (j→2), +4=10, +4=14, +2=16 (j→4)
    assert [r.size for r in rows] == [3, 5, 6, 10, 14, 16]
    assert [r.jump for r in rows] == [1, 1, 2, 2, 2, 4]
    assert [r.output_size for r in rows] == [64, 64, 32, 32, 32, 16]
    # a dilated 3×3 at dilation 2 spans 5 cells
    assert conv.receptive_field([conv.LayerSpec("conv", 3, 1, 2, 0)])[0].size == 5


def test_receptive_field_rejects_unknown_layer_kinds():
    with pytest.raises(ConvSettingError) as error:
        conv.receptive_field([("dense", 3, 1, 1, 0)])
    assert error.value.code == "bad_layer_kind"
    with pytest.raises(ConvSettingError) as error:
        conv.receptive_field([("conv", 3, 1, 1, 0, "extra")])
    assert error.value.code == "bad_layer"
    with pytest.raises(ConvSettingError) as error:
        conv.receptive_field([("pool", 2, 0, 1, 0)])
    assert error.value.code == "bad_stride"


# ---------------------------------------------------------------------------------------------
# sample images
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(conv.SAMPLE_IMAGES))
def test_sample_images_are_float32_unit_range_and_small(name):
    image = conv.sample_image(name)
    assert image.dtype == np.float32 and image.ndim == 2
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert max(image.shape) <= 512
    assert image.std() > 0.05  # a real picture, not a blank
    info = conv.SAMPLE_IMAGES[name]
    assert info.name == name and info.en and info.zh


def test_ct_sample_is_a_soft_tissue_window_of_the_hounsfield_units():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    by_hand = np.clip((hu - (40 - 400 / 2)) / 400, 0, 1)  # level 40, width 400
    np.testing.assert_allclose(conv.sample_image("ct_small"), by_hand, atol=1e-6)


def test_radiograph_sample_inverts_monochrome1_and_is_shrunk():
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCI.dcm", download=False))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = conv.sample_image("chest_radiograph")
    assert max(image.shape) == 512
    assert image.shape[1] == round(ds.Columns * 512 / ds.Rows)
    stored = torch.from_numpy(ds.pixel_array.astype(np.float32))[None, None]
    stored = F.adaptive_avg_pool2d(stored, image.shape)[0, 0].numpy()
    # in MONOCHROME1 high stored values are dark, so display and stored values anti-correlate
    assert np.corrcoef(image.ravel(), stored.ravel())[0, 1] < -0.9


def test_sample_image_max_side_and_unknown_name():
    assert max(conv.sample_image("camera", max_side=100).shape) == 100
    with pytest.raises(ConvSettingError) as error:
        conv.sample_image("brain")
    assert error.value.code == "unknown_image"


# ---------------------------------------------------------------------------------------------
# the labs' text forms: an edited kernel and a layer stack
# ---------------------------------------------------------------------------------------------


def test_kernel_text_parses_rows_fractions_and_any_separator():
    np.testing.assert_array_equal(
        conv.parse_kernel_text("1,0,-1; 2 0 -2\n1,0,-1"), [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    )
    np.testing.assert_allclose(conv.parse_kernel_text(",".join(["1/9"] * 9)), np.full((3, 3), 1 / 9), rtol=1e-6)
    assert conv.parse_kernel_text(" ".join(["0.5"] * 25)).shape == (5, 5)


@pytest.mark.parametrize("name", sorted(conv.KERNELS))
def test_kernel_text_round_trips_every_registered_kernel_exactly(name):
    weights = conv.KERNELS[name].weights
    text = conv.kernel_text(weights)
    np.testing.assert_array_equal(conv.parse_kernel_text(text), weights)
    assert "e" not in text  # short, human-readable fractions such as 1/16, not 0.0625000001


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1,2,3", "kernel_text_count"),
        ("", "kernel_text_count"),
        ("1,2,3,4,x,6,7,8,9", "kernel_text_number"),
        ("1,2,3,4,1/0,6,7,8,9", "kernel_text_number"),
        ("1,2,3,4,nan,6,7,8,9", "kernel_text_number"),
        ("1,2,3,4,5e9,6,7,8,9", "kernel_text_range"),
    ],
)
def test_kernel_text_errors_are_coded(text, code):
    with pytest.raises(ConvSettingError) as error:
        conv.parse_kernel_text(text)
    assert error.value.code == code


def test_resized_kernel_filters_the_same_way():
    """A ring of zeros changes nothing; scipy is the oracle for the filtering itself."""
    image = np.random.default_rng(4).random((30, 27))
    sobel = conv.KERNELS["sobel_x"].weights
    grown = conv.resize_kernel(sobel, 5)
    assert grown.shape == (5, 5) and np.abs(grown).sum() == np.abs(sobel).sum()
    expected = scipy.ndimage.correlate(image, sobel.astype(np.float64), mode="constant")
    np.testing.assert_allclose(conv.apply_kernel(image, grown), expected, atol=1e-5)
    np.testing.assert_array_equal(conv.resize_kernel(grown, 3), sobel)


def test_layer_text_round_trips_and_pads_convolutions_to_keep_the_size():
    text = "c3,c3s2,c3d2,p2,p3s2,c5d3"
    layers = conv.parse_layers(text)
    assert conv.layers_text(layers) == text
    assert [(x.kind, x.kernel, x.stride, x.dilation, x.padding) for x in layers] == [
        ("conv", 3, 1, 1, 1),
        ("conv", 3, 2, 1, 1),
        ("conv", 3, 1, 2, 2),
        ("pool", 2, 2, 1, 0),
        ("pool", 3, 2, 1, 0),
        ("conv", 5, 1, 3, 6),
    ]  # fmt: skip
    # "same" padding: a stride-1 convolution keeps the size, as torch's padding="same" does
    x = torch.zeros(1, 1, 20, 20)
    for layer in (x for x in layers if x.kind == "conv" and x.stride == 1):
        w = torch.zeros(1, 1, layer.kernel, layer.kernel)
        same = F.conv2d(x, w, padding="same", dilation=layer.dilation).shape[-1]
        assert conv.output_size(20, layer.kernel, 1, layer.padding, layer.dilation) == same == 20


def test_parsed_layer_stacks_match_the_gradient_receptive_field():
    for text in ("c3,c3,p2,c3,c3,p2,c3,c3,p2", "c3,c3d2,c3d4", "c3s2,c3s2,c3", "c5,p3s2,c3"):
        layers = conv.parse_layers(text)
        rows = conv.receptive_field(layers)
        tuples = [(x.kind, x.kernel, x.stride, x.dilation, x.padding) for x in layers]
        centre, first, last = _gradient_extent(tuples, 2 * rows[-1].size + 4 * rows[-1].jump + 12)
        assert last - first + 1 == rows[-1].size, text


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "layers_empty"),
        ("c3," * 13, "layers_too_many"),
        ("c3,dense", "layer_token"),
        ("c3,c0", "layer_range"),
        ("c13", "layer_range"),
        ("c3s9", "layer_range"),
    ],
)
def test_layer_text_errors_are_coded(text, code):
    with pytest.raises(ConvSettingError) as error:
        conv.parse_layers(text)
    assert error.value.code == code


# ---------------------------------------------------------------------------------------------
# one pixel of a lab feature map, for every border mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("border", "mode"), [("same", "constant"), ("reflect", "mirror"), ("valid", None)])
@pytest.mark.parametrize("name", ["sobel_y", "gaussian_5x5", "emboss"])
def test_feature_map_step_equals_the_filtered_image(border, mode, name):
    rng = np.random.default_rng(8)
    image = rng.random((17, 14))
    kernel = conv.KERNELS[name].weights.astype(np.float64)
    half = kernel.shape[0] // 2
    if mode is None:
        expected = scipy.ndimage.correlate(image, kernel, mode="constant")[half:-half, half:-half]
    else:
        expected = scipy.ndimage.correlate(image, kernel, mode=mode)
    for row, col in [(0, 0), (0, expected.shape[1] - 1), (5, 7), (expected.shape[0] - 1, 3)]:
        step = conv.feature_map_step(image, kernel, row, col, border)
        assert step.total == pytest.approx(expected[row, col], abs=1e-10)
        outside = (step.positions[..., 0] < 0) | (step.positions[..., 0] >= 17)
        outside |= (step.positions[..., 1] < 0) | (step.positions[..., 1] >= 14)
        np.testing.assert_array_equal(step.padding_mask, outside)


def test_feature_map_step_reads_mirrored_values_at_a_reflect_border():
    image = np.arange(25, dtype=np.float64).reshape(5, 5)
    step = conv.feature_map_step(image, np.ones((3, 3)), 0, 0, "reflect")
    # numpy "reflect" mirrors without repeating the edge: row −1 is row 1
    np.testing.assert_array_equal(step.patch, [[6, 5, 6], [1, 0, 1], [6, 5, 6]])
    assert step.padding_mask.sum() == 5


# ---------------------------------------------------------------------------------------------
# pixel spacing and the user's DICOM
# ---------------------------------------------------------------------------------------------


def test_sample_pixel_spacing_follows_the_file_and_the_shrinking():
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    assert conv.sample_pixel_spacing("ct_small") == pytest.approx(float(ct.PixelSpacing[0]))
    mr = pydicom.dcmread(get_testdata_file("MR2_UNCI.dcm", download=False))
    assert mr.Rows == 1024
    assert conv.sample_pixel_spacing("mr_shoulder") == pytest.approx(float(mr.PixelSpacing[0]) * 2)
    assert conv.sample_pixel_spacing("chest_radiograph") is None  # the file says 0\0
    assert conv.sample_pixel_spacing("camera") is None


def test_image_from_dicom_windows_inverts_and_shrinks():
    from primer import dicom

    with open(get_testdata_file("CT_small.dcm", download=False), "rb") as file:
        ct_bytes = file.read()
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    image, spacing = conv.image_from_dicom(dicom.read_dicom(ct_bytes))
    assert image.shape == (128, 128) and image.dtype == np.float32
    assert spacing == pytest.approx(float(ct.PixelSpacing[0]))
    hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    # a window maps HU monotonically: brighter pixels never have lower HU
    order = np.argsort(hu.ravel(), kind="stable")
    assert np.all(np.diff(image.ravel()[order]) >= -1e-6)
    assert image.min() >= 0.0 and image.max() <= 1.0

    radiograph = dicom.read_dicom(get_testdata_file("RG1_UNCI.dcm", download=False))
    image, spacing = conv.image_from_dicom(radiograph)
    assert max(image.shape) == 512 and spacing is None
    stored = torch.from_numpy(radiograph.pixels[0].astype(np.float32))[None, None]
    stored = F.adaptive_avg_pool2d(stored, image.shape)[0, 0].numpy()
    assert np.corrcoef(image.ravel(), stored.ravel())[0, 1] < -0.9  # MONOCHROME1 shown inverted


def test_image_from_dicom_refuses_a_tiny_image():
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from primer import dicom

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    buffer = __import__("io").BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ConvSettingError) as error:
        conv.image_from_dicom(dicom.read_dicom(buffer.getvalue()))
    assert error.value.code == "image_too_small"


# ---------------------------------------------------------------------------------------------
# learned filters
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_checkpoint():
    from primer.default_model import CHECKPOINT, load_checkpoint

    return load_checkpoint(CHECKPOINT)  # (lab, model, metrics); no data regeneration


def test_model_input_is_standardized_like_training():
    image = np.random.default_rng(6).random((64, 64)).astype(np.float32)
    x = conv.model_input(image)
    assert x.shape == (1, 1, 64, 64)
    by_hand = (image - image.mean()) / image.std(ddof=1)  # torch's std is the unbiased one
    np.testing.assert_allclose(x[0, 0].numpy(), by_hand, atol=1e-5)
    big = conv.model_input(np.random.default_rng(7).random((200, 150)))
    assert big.shape == (1, 1, 64, 64)
    assert conv.model_input(image, None).shape == (1, 1, 64, 64)


def test_first_layer_maps_match_the_models_own_first_block(default_checkpoint):
    _, model, _ = default_checkpoint
    x = conv.model_input(conv.sample_image("ct_small"))
    block = model.features[0]  # Sequential(conv, batch norm, ReLU) of the plain CNN
    with torch.no_grad():
        expected_conv = F.conv2d(x, block[0].weight, padding=1)[0].numpy()
        expected_relu = block(x)[0].numpy()
    np.testing.assert_allclose(conv.first_layer_maps(model, x, "conv"), expected_conv, atol=1e-5)
    np.testing.assert_allclose(conv.first_layer_maps(model, x, "relu"), expected_relu, atol=1e-5)
    with pytest.raises(ConvSettingError):
        conv.first_layer_maps(model, x, "softmax")


def test_filter_report_against_numpy_and_an_exact_sobel():
    rng = np.random.default_rng(12)
    initial = rng.standard_normal((4, 3, 3))
    learned = initial + 0.1 * rng.standard_normal((4, 3, 3))
    learned[2] = -2.5 * conv.KERNELS["sobel_x"].weights  # sign and scale do not matter
    report = conv.filter_report(learned, initial)
    for i in range(4):
        assert report.change[i] == pytest.approx(np.linalg.norm(learned[i] - initial[i]) / np.linalg.norm(initial[i]))
        assert report.init_correlation[i] == pytest.approx(np.corrcoef(learned[i].ravel(), initial[i].ravel())[0, 1])
    assert report.nearest[2] == "sobel_x" and report.similarity[2] == pytest.approx(1.0)
    np.testing.assert_allclose(report.weight_sum, learned.sum(axis=(1, 2)))
    assert conv.filter_report(learned).change is None


def test_filter_summary_says_near_start_only_while_every_filter_resembles_it():
    from primer import conv_figures

    rng = np.random.default_rng(5)
    initial = rng.standard_normal((6, 3, 3))
    for noise in (0.05, 3.0):  # a nudge keeps r near 1; a large random step breaks the resemblance
        learned = initial + noise * rng.standard_normal((6, 3, 3))
        summary = conv_figures.filter_summary(conv.filter_report(learned, initial))
        r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(learned, initial, strict=True)]
        assert summary["correlation_min"] == pytest.approx(min(r))
        assert summary["near_start"] == (min(r) >= 0.9)
    assert summary["near_start"] is False and noise == 3.0


def test_default_model_first_layer_barely_moved_from_its_start(default_checkpoint):
    """The chapter says so in lab 6, the lesson and the quiz: keep it true for the shipped model."""
    import models

    lab, model, _ = default_checkpoint
    start = conv.starting_filters(lab, 2)
    fresh = models.build(lab.model, seed=lab.seed, num_classes=2, width=lab.width)
    np.testing.assert_array_equal(start, conv.first_conv(fresh).weight.detach()[:, 0].numpy())
    report = conv.filter_report(conv.filter_weights(model), start)
    assert report.init_correlation.min() > 0.95
    assert report.similarity.max() < 0.9  # and none is a textbook kernel


def test_batch_feature_maps_channels_are_the_named_kernels():
    images = [conv.sample_image(n, 128) for n in ("ct_small", "camera")]
    batch = conv.batch_feature_maps(images, side=32)
    assert batch.shape == (2, 3, 32, 32)
    small = F.adaptive_avg_pool2d(torch.from_numpy(images[1])[None, None], 32)[0, 0].numpy()
    np.testing.assert_allclose(batch[1, 0], small, atol=1e-5)  # channel 0 is the identity kernel
    expected = scipy.ndimage.correlate(small.astype(np.float64), conv.KERNELS["laplacian"].weights.astype(float),
                                       mode="mirror")  # fmt: skip
    np.testing.assert_allclose(batch[1, 2], expected, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# figures: what is drawn is what the core computed
# ---------------------------------------------------------------------------------------------


def test_quiz_dot_product_answer_is_the_sum_of_the_drawn_numbers():
    from primer import conv_figures

    for seed in range(5):
        question = conv_figures.quiz_dot_product(seed)
        patch, kernel = (np.asarray(trace["z"]) for trace in question.figure.light_data)
        assert question.answer == pytest.approx(float((patch * kernel).sum()))
        texts = [np.asarray(trace["text"]).astype(float) for trace in question.figure.light_data]
        np.testing.assert_array_equal(texts[0], patch)  # the numbers written are the numbers used
        np.testing.assert_array_equal(texts[1], kernel)


def test_quiz_receptive_field_answer_matches_the_gradient():
    from primer import conv_figures

    question = conv_figures.quiz_receptive_field("c3,c3,p2,c3")
    tuples = [(x.kind, x.kernel, x.stride, x.dilation, x.padding) for x in conv.parse_layers("c3,c3,p2,c3")]
    _, first, last = _gradient_extent(tuples, 60)
    assert question.answer == last - first + 1 == 10


def test_grid_view_frames_mark_exactly_the_cells_each_output_reads():
    from primer import conv_figures

    reads = conv.reads_map(7, 3, 2, 1, 2)
    fig = conv_figures.grid_view_figure(reads, 1, 1, ("in", "out"))
    frames = fig.light_frames
    assert len(frames) == reads.output_shape[0] * reads.output_shape[1]
    for frame in frames:
        i, j = (int(v) for v in frame["name"].split(","))
        overlay = frame["data"][0]
        rows, cols = np.nonzero(~np.isnan(overlay["z"]))
        marked = sorted(zip(rows + overlay["y0"], cols + overlay["x0"], strict=True))
        assert marked == sorted(map(tuple, reads.cells(i, j).reshape(-1, 2).tolist()))
        assert (frame["data"][1]["y0"], frame["data"][1]["x0"]) == (i, j)


def test_output_size_latex_ends_with_the_output_size():
    from primer import conv_figures

    for args in [(7, 3, 1, 0, 1), (64, 5, 2, 2, 1), (9, 3, 3, 1, 2)]:
        assert conv_figures.output_size_latex(*args).endswith(f"= {conv.output_size(*args)}")


def test_light_figures_serialize_with_binary_arrays_and_keep_a_real_layout():
    import plotly.io as pio

    from primer import conv_figures

    image = conv.sample_image("ct_small")
    fig = conv_figures.image_and_map_figure(image, conv.apply_kernel(image, "laplacian"), ("a", "b"))
    fig.update_layout(height=777)
    spec = fig.to_dict()
    assert spec["layout"]["height"] == 777
    heatmap = spec["data"][1]
    assert heatmap["z"]["dtype"] == "f4" and "bdata" in heatmap["z"]
    assert heatmap["zmax"] == -heatmap["zmin"] > 0  # a diverging scale centred on zero
    assert isinstance(heatmap["colorscale"], list)  # explicit colours: plotly.js knows no "RdBu_r"
    assert len(pio.to_json(spec, validate=False)) > 100_000
