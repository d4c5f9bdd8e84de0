"""Compound scaling: torch's FLOP counts against hand formulas and against rounding bounds, and the
accuracy-against-FLOPs figure's data against torch's own counter."""

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models
from primer import architectures_figures as figs
from primer import scaling
from primer.scaling import ALPHA, BETA, GAMMA, MAX_PHI, MODES, Dims, ScaleLab

torch.set_num_threads(1)


def hand_flops_resnet(dims: Dims, stages: int = 3, num_classes: int = 2) -> int:
    """Forward FLOPs of resnet_small's convolutions and head, by layer arithmetic:
    2 · k² · c_in · c_out · H_out · W_out per convolution, 2 · in · out for the linear head."""

    def conv(k, c_in, c_out, side):
        return 2 * k * k * c_in * c_out * side * side

    side, c = dims.resolution, dims.width
    total = conv(3, 1, c, side)  # stem
    for stage in range(stages):
        c_out = dims.width * 2**stage
        for block in range(dims.depth):
            c_in = c if block == 0 else c_out
            total += conv(3, c_in, c_out, side) + conv(3, c_out, c_out, side)
            if c_in != c_out:
                total += conv(1, c_in, c_out, side)  # the 1×1 projection on the shortcut
        c = c_out
        side //= 2  # 2×2 max pooling floors odd sizes
    return total + 2 * c * num_classes


def torch_flops(model, size: int) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 1, size, size))
    return counter.get_total_flops()


def test_the_coefficients_give_about_two():
    assert scaling.ideal_flops_ratio("compound") == pytest.approx(1.2 * 1.21 * 1.3225)
    assert scaling.ideal_flops_ratio("compound") == pytest.approx(1.92, abs=0.005)
    assert scaling.ideal_flops_ratio("depth") == pytest.approx(ALPHA)
    assert scaling.ideal_flops_ratio("width") == pytest.approx(BETA**2)
    assert scaling.ideal_flops_ratio("resolution") == pytest.approx(GAMMA**2)


def test_scaled_dims_round_each_axis_to_the_nearest_whole_number():
    assert scaling.scaled_dims("compound", 0) == Dims(2, 8, 32)
    assert scaling.scaled_dims("compound", 2) == Dims(round(2 * 1.44), round(8 * 1.21), round(32 * 1.3225))
    assert scaling.scaled_dims("depth", 4) == Dims(4, 8, 32)  # 2 · 1.2⁴ = 4.15
    assert scaling.scaled_dims("width", 4) == Dims(2, 12, 32)  # 8 · 1.1⁴ = 11.71
    assert scaling.scaled_dims("resolution", 4) == Dims(2, 8, 56)  # 32 · 1.15⁴ = 55.97
    with pytest.raises(ValueError):
        scaling.scaled_dims("compound", MAX_PHI + 1)
    with pytest.raises(ValueError):
        scaling.scaled_dims("sideways", 1)


@pytest.mark.parametrize("mode", MODES)
def test_flops_match_the_hand_formula(mode):
    for phi in range(MAX_PHI + 1):
        variant = scaling.scaled_variant("resnet_small", mode, phi)
        assert variant.flops == hand_flops_resnet(variant.dims), (mode, phi)


@pytest.mark.parametrize("base", scaling.BASES)
def test_every_variant_is_counted_on_the_model_it_builds(base):
    for variant in scaling.scaling_table(base):
        model = scaling.build_scaled(base, variant.dims)
        assert variant.flops == torch_flops(model, variant.dims.resolution)
        assert len([m for m in model.features if type(m).__name__ != "MaxPool2d"]) == 1 + 3 * variant.dims.depth


def ratio_bounds(mode: str, phi: int, stages: int = 3) -> tuple[float, float]:
    """Where one φ → φ+1 FLOPs ratio may fall once blocks, channels and pixels are whole numbers.

    Each scaled axis is n0·s^φ rounded to the nearest integer, so within ±0.5 of it (exact at
    φ = 0). A convolution's FLOPs grow as (its share of) depth¹ · width² · side²; the stem sees
    width once (one input channel), and 2×2 pooling floors the smallest map, side/2^(stages-1),
    by up to one pixel. The network's ratio is a weighted mean of its layers' ratios, so it lies
    between the extreme per-layer bounds (the linear head, under 0.01% of the FLOPs, is left out)."""
    slack = 0.0 if phi == 0 else 0.5
    bounds = {}
    for axis, n0, now, nxt in zip(
        ("depth", "width", "resolution"),
        (scaling.BASE_DEPTH, scaling.BASE_WIDTH, scaling.BASE_RESOLUTION),
        scaling.multipliers(mode, phi),
        scaling.multipliers(mode, phi + 1),
        strict=True,
    ):
        now, nxt = n0 * now, n0 * nxt
        if now == nxt:
            bounds[axis] = (1.0, 1.0)
        elif axis == "resolution":
            floor = 2 ** (stages - 1)  # one pixel of the smallest map, in input pixels
            bounds[axis] = ((nxt - 0.5 - floor) / (now + slack), (nxt + 0.5) / (now - slack - floor))
        else:
            bounds[axis] = ((nxt - 0.5) / (now + slack), (nxt + 0.5) / (now - slack))
    (d_lo, d_hi), (w_lo, w_hi), (r_lo, r_hi) = bounds["depth"], bounds["width"], bounds["resolution"]
    lo = d_lo * min(w_lo, w_lo**2) * min(r_lo, r_lo**2)
    hi = d_hi * max(w_hi, w_hi**2) * max(r_hi, r_hi**2)
    return lo, hi


@pytest.mark.parametrize("mode", MODES)
def test_each_phi_step_multiplies_flops_by_the_ideal_factor_within_rounding(mode):
    flops = [scaling.scaled_variant("resnet_small", mode, phi).flops for phi in range(MAX_PHI + 1)]
    ideal = scaling.ideal_flops_ratio(mode)
    for phi in range(MAX_PHI):
        lo, hi = ratio_bounds(mode, phi)
        assert lo <= ideal <= hi  # the bounds are around the ideal factor, not elsewhere
        assert lo <= flops[phi + 1] / flops[phi] <= hi, (mode, phi, flops[phi + 1] / flops[phi], lo, hi)
    # over four steps the rounding mostly cancels: the mean step is close to the ideal one
    mean_step = (flops[-1] / flops[0]) ** (1 / MAX_PHI)
    assert mean_step == pytest.approx(ideal, rel=0.035)


def test_resolution_adds_flops_but_no_parameters():
    base, wide = (
        scaling.scaled_variant("resnet_small", "resolution", 0),
        scaling.scaled_variant("resnet_small", "resolution", 4),
    )
    assert base.params == wide.params
    assert wide.flops > 2.5 * base.flops


def test_frontier_points_are_torch_counts_and_only_measured_aucs():
    points = scaling.frontier_points(8, {"plain_cnn": 0.91})
    assert [p.model for p in points] == models.names("classifier")
    for p in points:
        model = models.build(p.model, width=8)
        assert p.flops == torch_flops(model, 64)
        assert p.params == sum(q.numel() for q in model.parameters())
    assert {p.model: p.val_auc for p in points if p.val_auc is not None} == {"plain_cnn": 0.91}


def test_accuracy_flops_chart_draws_raced_points_and_a_strip_for_the_rest():
    points = scaling.frontier_points(8, {"plain_cnn": 0.91, "resnet_small": 0.93})
    labels = {
        k: k for k in ("val_auc", "flops", "flops_axis", "params", "input", "not_raced", "strip", "scaled", "invite")
    }
    fig = figs.accuracy_flops_chart(points, [], {}, labels)
    raced = [t for t in fig.data if t.yaxis == "y"]
    strip = [t for t in fig.data if t.yaxis == "y2"]
    assert sorted(float(t.y[0]) for t in raced) == [0.91, 0.93]
    assert sorted(strip[0].x) == sorted(p.flops for p in points if p.val_auc is None)
    assert fig.layout.xaxis.type == "log"
    empty = figs.accuracy_flops_chart(scaling.frontier_points(8, {}), [], {}, labels)
    assert "invite" in json.dumps(empty.to_plotly_json()["layout"]["annotations"])
    assert all(t.yaxis == "y2" for t in empty.data)


def test_resize_matches_pillows_antialiased_bilinear():
    """torch's antialiased bilinear resize is the filter Pillow uses: the oracle for "resize the phantoms"."""
    import numpy as np
    from PIL import Image

    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    for size in (32, 37, 56):
        small = scaling.resize(x, size)
        assert small.shape == (2, 1, size, size)
        for i in range(2):
            oracle = np.asarray(Image.fromarray(x[i, 0].numpy(), mode="F").resize((size, size), Image.BILINEAR))
            np.testing.assert_allclose(small[i, 0].numpy(), oracle, atol=1e-4)
    assert scaling.resize(x, 64) is x


def test_a_short_scaled_run_trains_at_its_own_resolution():
    seen = []
    run = scaling.train_scaled(ScaleLab(mode="resolution", phi=1, num_images=120, num_epochs=1), on_epoch=seen.append)
    assert run.variant.dims.resolution == 37
    assert len(seen) == 1 and len(run.val_auc) == 1
    assert math.isfinite(run.val_auc[0]) and 0.0 <= run.test_auc <= 1.0


def test_the_numbers_the_presets_and_the_lesson_state():
    from primer import labstate

    presets = {p.id: p for p in labstate.load_presets("architectures")["scale"]}

    def say(preset_id, *numbers):
        text = presets[preset_id].commentary["en"]
        for number in numbers:
            assert number in text, (preset_id, number, text)

    def ratio(base, mode, phi):
        return scaling.scaled_variant(base, mode, phi).flops / scaling.scaled_variant(base, mode, 0).flops

    dims = ScaleLab().dims()  # the default: compound, φ = 1
    say("compound1", f"{dims.depth} blocks", f"{dims.width} channels", f"{dims.resolution} px", "2.4 blocks")
    say("compound1", f"{ratio('resnet_small', 'compound', 1):.2f} times", f"ideal {1.92027:.2f}")
    dims = scaling.scaled_dims("compound", 2)
    say("compound", f"{dims.depth} blocks", f"{dims.width} channels", f"{dims.resolution} px")
    say("compound", f"{ratio('resnet_small', 'compound', 2):.1f} times", f"1.92² gives {1.92027**2:.1f}", "2.88")
    assert round(2 * ALPHA**2, 2) == 2.88
    say("depth", f"{ratio('resnet_small', 'depth', 4):.2f} times", f"1.2⁴ = {ALPHA**4:.2f}")
    say(
        "width",
        f"{ratio('resnet_small', 'width', 4):.2f} times",
        f"1.1⁸ = {BETA**8:.2f}",
        f"{8 * BETA**4:.1f} channels",
    )
    wide = scaling.scaled_variant("resnet_small", "width", 4)
    assert wide.params > 2 * scaling.scaled_variant("resnet_small", "width", 0).params  # "more than twofold"
    say("resolution", "56 px", f"{ratio('resnet_small', 'resolution', 4):.2f} times", f"1.15⁸ = {GAMMA**8:.2f}")
    say("separable_width", f"{ratio('separable_cnn', 'width', 4):.2f} times", f"not {BETA**8:.2f}")
    # the lesson: 1.2 × 1.21 × 1.3225 ≈ 1.92; 224 px over a 43 cm film; NASNet's 500 GPUs × 4 days
    assert round(1.2 * 1.21 * 1.3225, 2) == 1.92
    assert round(430 / 224, 1) == 1.9 and 5 / (430 / 224) < 3
    assert 500 * 4 == 2000
