"""Attribution wrappers, localization scores, the sanity cascade, embeddings, hybrid inputs and
the shortcut data, checked against independent computations: hooks and torch.autograd, exact
answers for linear models, brute-force occlusion, SciPy and scikit-learn."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from primer import explain as E
from primer import hybrid, shortcut
from primer import saliency_figures as figs


@pytest.fixture(scope="module")
def default():
    from primer.default_model import load_default

    return load_default()


@pytest.fixture(scope="module")
def model(default):
    return E.private_copy(default.model)


@pytest.fixture(scope="module")
def lesions(default):
    """A few test images with lesions, and their masks."""
    pick = (default.test.y == 1).nonzero().squeeze(1)[:4]
    return default.test.x[pick], default.test.mask[pick].numpy()


class Linear(nn.Module):
    """score_c = Σ w_c · x + b_c: every method's correct answer is known in closed form."""

    def __init__(self, size: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(2, 1, size, size, generator=g))
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, x):
        return (x[:, None] * self.weight[None]).flatten(2).sum(-1) + self.bias  # (N, 2)


class Smooth(nn.Module):
    """A small smooth CNN (softplus, average pooling): path integrals converge quickly on it."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.head(F.softplus(self.conv(x)).mean((2, 3)))


# ---------------------------------------------------------------------------------------------
# Methods against independent computations


def test_saliency_is_the_absolute_input_gradient_from_autograd(model, lesions):
    x = lesions[0][:2]
    xi = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xi)[:, 1].sum(), xi)
    np.testing.assert_allclose(E.saliency(model, x, 1), grad.abs().numpy(), rtol=1e-5, atol=1e-7)


def test_linear_model_maps_have_their_closed_form():
    net = Linear().eval()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    w = net.weight[1].detach().numpy()  # (1, 8, 8): ∂score/∂x for class 1
    expected = np.broadcast_to(w * x.numpy(), x.shape)  # contribution relative to a zero image
    np.testing.assert_allclose(E.saliency(net, x, 1), np.broadcast_to(np.abs(w), x.shape), rtol=1e-6)
    amap, delta = E.integrated_gradients(net, x, 1, baseline="zero", steps=4)
    np.testing.assert_allclose(amap, expected, rtol=1e-5, atol=1e-6)  # exact for a linear function
    np.testing.assert_allclose(delta, 0.0, atol=1e-5)
    amap, _ = E.deeplift(net, x, 1, baseline="zero")
    np.testing.assert_allclose(amap, expected, rtol=1e-5, atol=1e-6)
    # a 1×1 occluder replaces one pixel by 0 and drops the score by exactly w·x there
    np.testing.assert_allclose(E.occlusion(net, x, 1, window=1, stride=1), expected, rtol=1e-5, atol=1e-6)


def test_gradcam_matches_an_independent_hook_computation(model, lesions):
    x = lesions[0][:3]
    blocks = E.conv_blocks(model)
    for back in (0, 2):
        layer = blocks[len(blocks) - 1 - back].module
        store = {}
        handle = layer.register_forward_hook(lambda _m, _i, out, store=store: store.__setitem__("a", out))
        xi = x.clone().requires_grad_(True)
        score = model(xi)[:, 1].sum()
        handle.remove()
        (grad,) = torch.autograd.grad(score, store["a"])  # (N, C, h, w)
        weights = grad.mean(dim=(2, 3), keepdim=True)  # α_k: mean gradient per channel
        cam = F.relu((weights * store["a"]).sum(1, keepdim=True))  # (N, 1, h, w)
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False).detach().numpy()
        ours = E.gradcam(model, x, 1, block=back)
        for a, b in zip(ours, cam, strict=True):
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.99


def test_integrated_gradients_completeness():
    net = Smooth().eval()
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    amap, delta = E.integrated_gradients(net, x, 1, baseline="zero", steps=64)
    with torch.no_grad():
        change = (net(x) - net(torch.zeros_like(x)))[:, 1].numpy()
    sums = amap.reshape(2, -1).sum(1)
    np.testing.assert_allclose(sums, change, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(delta, sums - change, atol=1e-5)  # the delta Captum reports


def test_integrated_gradients_on_the_default_model_converge_with_steps(model, lesions):
    x = lesions[0][:1]
    with torch.no_grad():
        change = float((model(x) - model(torch.zeros_like(x)))[0, 1])
    coarse = abs(float(E.integrated_gradients(model, x, 1, steps=10)[1][0]))
    amap, delta = E.integrated_gradients(model, x, 1, steps=300)
    assert abs(float(delta[0])) <= 0.05 * abs(change) + 0.01
    assert abs(amap.sum() - change) == pytest.approx(abs(float(delta[0])), abs=1e-4)
    assert abs(float(delta[0])) < coarse


def test_occlusion_matches_brute_force(model, lesions):
    x = lesions[0][:1]
    amap = E.occlusion(model, x, 1, window=16, stride=16)  # non-overlapping: one drop per tile
    with torch.no_grad():
        full = float(model(x)[0, 1])
        for r in range(0, 64, 16):
            for c in range(0, 64, 16):
                hidden = x.clone()
                hidden[..., r : r + 16, c : c + 16] = 0.0
                drop = full - float(model(hidden)[0, 1])
                np.testing.assert_allclose(amap[0, 0, r : r + 16, c : c + 16], drop, rtol=1e-4, atol=1e-5)


def test_every_method_gives_a_map_of_the_input_shape(model, lesions):
    x = lesions[0][:2]
    for method in E.METHODS:
        result = E.attribute(model, x, method, 1, E.MethodSettings(ig_steps=8, smooth_samples=4, shap_samples=4))
        assert result.map.shape == tuple(x.shape), method
        assert np.isfinite(result.map).all(), method
        assert result.signed == (method in E.SIGNED)
        if method in ("integrated_gradients", "deeplift", "gradient_shap"):
            assert result.delta.shape == (2,)
        if not result.signed:
            assert (result.map >= 0).all(), method


def test_noisy_methods_are_reproducible_and_leave_global_generators_alone(model, lesions):
    x = lesions[0][:1]
    torch.manual_seed(123)
    np.random.seed(123)
    before = (torch.rand(1).item(), np.random.rand())
    torch.manual_seed(123)
    np.random.seed(123)
    a = E.smoothgrad(model, x, 1, samples=6, seed=5)
    b = E.smoothgrad(model, x, 1, samples=6, seed=5)
    c = E.smoothgrad(model, x, 1, samples=6, seed=6)
    s1, _ = E.gradient_shap(model, x, 1, samples=6, seed=5)
    s2, _ = E.gradient_shap(model, x, 1, samples=6, seed=5)
    after = (torch.rand(1).item(), np.random.rand())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(a, c)
    assert before == after


def test_private_copy_is_frozen_and_independent(default):
    clone = E.private_copy(default.model)
    assert not clone.training
    assert all(not p.requires_grad for p in clone.parameters())
    assert all(p.requires_grad for p in default.model.parameters())
    assert clone.head.weight.data_ptr() != default.model.head.weight.data_ptr()


def test_baselines():
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(E.make_baseline(x, "zero"), torch.zeros_like(x))
    black = E.make_baseline(x, "black")
    assert torch.allclose(black[:, 0, 0, 0], x.amin(dim=(1, 2, 3)))
    blur = E.make_baseline(x, "blur")
    assert blur.std() < 0.5 * x.std()  # σ = 4 px removes most of white noise
    assert torch.equal(E.make_baseline(x, "noise", seed=1), E.make_baseline(x, "noise", seed=1))


# ---------------------------------------------------------------------------------------------
# Localization scores


def test_pointing_game_on_constructed_maps():
    mask = np.zeros((20, 20), bool)
    mask[8:12, 8:12] = True
    hit = np.zeros((20, 20))
    hit[9, 10] = 1.0
    miss = np.zeros((20, 20))
    miss[9, 13] = 1.0  # two pixels right of the mask
    miss[9, 10] = 0.5  # most of the map's second peak is inside, but not its maximum
    assert E.pointing_hit(hit, mask)
    assert not E.pointing_hit(miss, mask)
    assert E.pointing_hit(miss, mask, tolerance_px=2)
    assert not E.pointing_hit(miss, mask, tolerance_px=1)
    assert not E.pointing_hit(np.zeros((20, 20)), mask)  # a blank map points nowhere
    assert not E.pointing_hit(-hit, mask)  # negative evidence is not pointing


def test_energy_inside_the_mask():
    mask = np.zeros((10, 10), bool)
    mask[:2] = True
    assert E.energy_inside(np.ones((10, 10)), mask) == pytest.approx(0.2)  # uniform map: the area fraction
    signed = np.where(mask, 1.0, -1.0)
    assert E.energy_inside(signed, mask) == pytest.approx(1.0)  # only positive values count
    assert E.energy_inside(np.zeros((10, 10)), mask) == 0.0


def test_wilson_interval_matches_scipy():
    for k, n in [(0, 10), (7, 10), (33, 40), (40, 40)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert E.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_score_maps_and_summary():
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:4, 2:4] = True
    on = np.zeros((3, 8, 8))
    on[:, 3, 3] = 1.0
    off = np.zeros((3, 8, 8))
    off[:, 6, 6] = 1.0
    scores = E.score_maps({"on": on, "off": off}, masks)
    rows = {r["method"]: r for r in scores.summary()}
    assert rows["on"]["pointing"] == 1.0 and rows["off"]["pointing"] == 0.0
    assert rows["on"]["energy"] == 1.0 and rows["off"]["energy"] == 0.0
    assert rows["random"]["pointing"] == pytest.approx(4 / 64)


def test_localization_maps_include_the_controls(model, lesions):
    x, masks = lesions
    maps = E.localization_maps(model, x[:2], 1, E.MethodSettings(ig_steps=4), methods=("saliency", "gradcam"))
    assert set(maps) == {"saliency", "gradcam", "image", "edges"}
    assert all(m.shape == (2, 64, 64) for m in maps.values())
    np.testing.assert_allclose(maps["image"], x[:2, 0].numpy())


def test_edge_control_is_the_sobel_magnitude():
    from scipy import ndimage

    image = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    ours = E.control_map(torch.from_numpy(image)[None, None], "edges")[0, 0]
    gx = ndimage.sobel(image, axis=1, mode="nearest")
    gy = ndimage.sobel(image, axis=0, mode="nearest")
    np.testing.assert_allclose(ours, np.hypot(gx, gy), rtol=1e-4, atol=1e-4)


def test_case_indices_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    labels, prob = rng.integers(0, 2, 50), rng.random(50)
    for kind, want in {"tp": (1, True), "fn": (1, False), "fp": (0, True), "tn": (0, False)}.items():
        brute = [i for i in range(50) if labels[i] == want[0] and (prob[i] >= 0.5) == want[1]]
        assert list(E.case_indices(labels, prob, kind)) == brute
    assert len(E.case_indices(labels, prob, "any")) == 50


# ---------------------------------------------------------------------------------------------
# Sanity check


def test_randomization_cascade_changes_exactly_the_layers_it_claims(default):
    steps = E.randomization_cascade(default.model, seed=0)
    layers = E.cascade_layers(default.model)
    assert [name for name, _ in steps] == ["original", *layers]
    assert layers[0] == "head" and layers[-1] == "features.0"
    original = default.model.state_dict()
    for k, (_, net) in enumerate(steps):
        changed = set(layers[:k])
        for name, value in net.state_dict().items():
            owner = next((layer for layer in layers if name.startswith(layer + ".")), None)
            same = torch.equal(value, original[name])
            if owner in changed and name.endswith("weight") and value.dim() > 1:
                assert not same, f"step {k}: {name} should be random"
            if owner not in changed:
                assert same, f"step {k}: {name} should be untouched"
    # the trained model itself is never modified, and the same seed gives the same cascade
    assert all(torch.equal(v, original[k]) for k, v in default.model.state_dict().items())
    again = E.randomization_cascade(default.model, seed=0)
    assert torch.equal(again[-1][1].features[0][0].weight, steps[-1][1].features[0][0].weight)


def test_rank_correlation_matches_scipy_and_handles_blank_maps():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    assert E.rank_correlation(a, b) == pytest.approx(stats.spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0])
    assert E.rank_correlation(a, b, absolute=False) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0])
    assert E.rank_correlation(a, np.zeros((8, 8))) == 0.0


def test_rank_correlations_match_scipy_row_by_row_with_ties_and_flat_maps():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 4, 6, 6))
    b = np.round(rng.normal(size=(3, 4, 6, 6)), 1)  # rounding makes ties: average ranks
    a[1, 2] = 0.5  # a flat map: ρ is defined as 0
    rho = E.rank_correlations(a, b)
    assert rho.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            expected = (
                0.0 if np.ptp(a[i, j]) == 0 else stats.spearmanr(np.abs(a[i, j]).ravel(), np.abs(b[i, j]).ravel())[0]
            )
            assert rho[i, j] == pytest.approx(expected, abs=1e-12)
    # broadcasting one reference over many maps, signed values
    signed = E.rank_correlations(a[:1], b, absolute=False)
    assert signed[2, 3] == pytest.approx(stats.spearmanr(a[0, 3].ravel(), b[2, 3].ravel())[0], abs=1e-12)


def test_a_sanity_summary_of_fewer_images_equals_one_computed_on_those_images_only():
    rng = np.random.default_rng(3)
    steps, layers = 3, ["original", "head", "features.7"]
    per_step = [{"saliency": rng.normal(size=(4, 8, 8)), "edges": rng.normal(size=(4, 8, 8))} for _ in range(steps)]
    x = torch.from_numpy(rng.normal(size=(4, 1, 8, 8)))
    sliced = E.summarize_sanity(layers, per_step, x, count=2)
    alone = E.summarize_sanity(layers, [{k: v[:2] for k, v in step.items()} for step in per_step], x[:2])
    narrowed = E.summarize_sanity(layers, per_step, x).first(2)  # what the page does
    for result in (sliced, narrowed):
        for name in ("saliency", "edges"):
            np.testing.assert_allclose(result.correlation[name], alone.correlation[name])
            np.testing.assert_allclose(result.correlation_sd[name], alone.correlation_sd[name])
            np.testing.assert_allclose(result.image_correlation[name], alone.image_correlation[name])
            np.testing.assert_array_equal(result.maps[name], alone.maps[name])
    # and the mean over images is the mean of scipy's per-image ρ
    expected = np.mean(
        [
            stats.spearmanr(np.abs(per_step[0]["saliency"][i]).ravel(), np.abs(per_step[2]["saliency"][i]).ravel())[0]
            for i in range(2)
        ]
    )
    assert sliced.correlation["saliency"][2] == pytest.approx(expected)


def test_sanity_check_shapes_and_the_model_free_control(default, lesions):
    x = lesions[0][:1]
    result = E.sanity_check(default.model, x, 1, E.MethodSettings(ig_steps=4), methods=("saliency", "gradcam"))
    steps = len(E.cascade_layers(default.model)) + 1
    assert result.maps["saliency"].shape == (steps, 64, 64)
    np.testing.assert_allclose(result.correlation["edges"], 1.0)  # needs no model: never changes
    assert result.correlation["saliency"][0] == pytest.approx(1.0)
    assert result.correlation["saliency"][-1] < 0.9  # a random network's gradient is another map


# ---------------------------------------------------------------------------------------------
# Embeddings


def test_embedding_and_projections(default):
    x = default.test.x[:60]
    features = E.embed(default.model, x)
    with torch.no_grad():
        np.testing.assert_allclose(features, default.model.embed(x).numpy(), rtol=1e-5, atol=1e-6)
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(features)
    np.testing.assert_allclose(
        np.abs(E.project(features, "pca")), np.abs(PCA(2).fit_transform(z)), rtol=1e-4, atol=1e-5
    )
    a = E.project(features, "tsne", seed=0, perplexity=10)
    b = E.project(features, "tsne", seed=0, perplexity=10)
    assert a.shape == (60, 2)
    np.testing.assert_array_equal(a, b)
    assert E.explained_variance(features).sum() <= 1.0


# ---------------------------------------------------------------------------------------------
# Other inputs: hybrid CT and DICOM


def test_hybrid_case_puts_a_known_lesion_into_real_ct():
    from primer import dicom

    with_lesion = hybrid.hybrid_case("ct_small", seed=1, contrast=2.5)
    without = hybrid.hybrid_case("ct_small", seed=1, contrast=0.0)
    assert with_lesion.x.shape == (1, 1, 64, 64) and with_lesion.mask.shape == (64, 64)
    assert 10 < with_lesion.mask.sum() < 200
    r0, c0 = with_lesion.origin
    np.testing.assert_array_equal(with_lesion.hu, hybrid.ct_slice_hu("ct_small")[r0 : r0 + 64, c0 : c0 + 64])
    # without the lesion, x is the windowed patch standardised (mean 0, std 1)
    windowed = dicom.apply_window(without.hu, *dicom.WINDOW_PRESETS["mediastinum"])
    np.testing.assert_allclose(without.x[0, 0].numpy(), (windowed - windowed.mean()) / windowed.std(), atol=1e-4)
    # the lesion adds contrast × patch std × a unit profile whose mask is the one returned
    added = (with_lesion.x - without.x)[0, 0].numpy()
    assert added.max() == pytest.approx(2.5, rel=0.05)
    assert added[with_lesion.mask].min() > added[~with_lesion.mask].max() * 0.1
    peak = np.unravel_index(np.argmax(added), added.shape)
    assert with_lesion.mask[peak]  # the brightest added pixel is the lesion's centre, inside its mask
    again = hybrid.hybrid_case("ct_small", seed=1, contrast=2.5)
    np.testing.assert_array_equal(again.x.numpy(), with_lesion.x.numpy())


def test_a_dicom_becomes_a_standardised_network_input():
    from pydicom.data import get_testdata_file

    from primer.dicom import read_dicom

    image = read_dicom(get_testdata_file("CT_small.dcm", download=False))
    item = hybrid.network_input(image)
    assert item.x.shape == (1, 1, 64, 64)
    assert float(item.x.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(item.x.std()) == pytest.approx(1.0, abs=1e-2)
    assert item.display.min() >= 0.0 and item.display.max() <= 1.0


# ---------------------------------------------------------------------------------------------
# Shortcut data


def test_shortcut_data_differ_only_where_the_marker_is():
    region = torch.from_numpy(shortcut.marker_mask("tag"))
    data = shortcut.make_data(shortcut.ShortcutLab(num_images=200, marker="tag", control="none"))
    differs = (data.train_shortcut.x != data.train_control.x)[:, 0]  # (N, H, W); the control is clean here
    assert not differs[:, ~region].any()  # nothing outside the marker changes
    assert torch.equal(differs.flatten(1).any(1), data.train_shortcut.y == 1)  # marker on every positive
    clean, flipped, marked = data.variants["clean"], data.variants["flipped"], data.variants["marked"]
    assert torch.equal((flipped.x != clean.x).flatten(1).any(1), clean.y == 0)
    assert torch.equal((marked.x != clean.x).flatten(1).any(1), clean.y == 1)


def test_random_control_carries_the_marker_regardless_of_label():
    lab = shortcut.ShortcutLab(num_images=400, marker="letter", control="random")
    data = shortcut.make_data(lab)
    clean = shortcut.make_data(shortcut.ShortcutLab(num_images=400, marker="letter", control="none")).train_control
    carries = (data.train_control.x != clean.x).flatten(1).any(1)
    share_pos = carries[clean.y == 1].float().mean().item()
    share_neg = carries[clean.y == 0].float().mean().item()
    assert 0.3 < share_pos < 0.7 and 0.3 < share_neg < 0.7  # about half of each class: no shortcut


def test_the_marker_patterns():
    letter, tag = shortcut.marker_pattern("letter"), shortcut.marker_pattern("tag")
    assert letter[:3].sum() == 0 and tag[:3].sum() == 0  # 3 px from the border
    assert (letter > 0).sum() == 9 and (letter < 0).sum() > (letter > 0).sum()  # a thin letter on a dark box
    assert tag.sum() == 0 and (tag != 0).sum() == 36  # a balanced 6×6 checkerboard
    with pytest.raises(ValueError):
        shortcut.marker_pattern("arrow")


def test_a_quick_shortcut_run_learns_the_marker():
    # The page test trains the same two models: through the process-wide training queue it is
    # handed these finished runs instead of training them again.
    lab = shortcut.ShortcutLab(num_images=600, marker="letter", control="random")
    report = shortcut.run(lab, shortcut.train_through_queue)
    assert report.auc["shortcut"]["marked"] > 0.95  # the marker alone separates the classes
    assert report.auc["shortcut"]["flipped"] < 0.5  # and moving it turns the model upside down
    assert report.auc["control"]["flipped"] > report.auc["shortcut"]["flipped"]
    assert report.marker_share["shortcut"] > report.marker_share["control"]
    shown = shortcut.example_maps(report, 0)
    assert shown.images["marked"].shape == (64, 64)
    assert set(shown.maps) == {
        (m, v, k) for m in shortcut.MODELS for v in ("marked", "clean") for k in ("gradcam", "saliency")
    }


# ---------------------------------------------------------------------------------------------
# Figures


def test_quiz_figure_has_exactly_one_hit():
    for seed in range(6):
        question = figs.quiz_pointing_game(seed)
        assert question.answer in range(4)
        assert len(question.figure.light_data) > 4  # 4 panels: image, map and outline each


def test_overlay_figure_scales_each_map_to_itself():
    image = np.zeros((8, 8))
    amap = np.zeros((8, 8))
    amap[2, 3] = 5.0
    amap[4, 4] = -10.0
    fig = figs.overlay_figure(image, amap, signed=True, opacity=0.3, mask=amap != 0)
    heat = fig.data[1]
    assert heat.opacity == 0.3 and np.abs(np.array(heat.z)).max() == 1.0
    assert np.array(heat.z)[4, 4] == -1.0
    unsigned = figs.overlay_figure(image, amap, signed=False).data[1]
    assert np.array(unsigned.z).min() == 0.0 and np.array(unsigned.z)[2, 3] == 1.0
