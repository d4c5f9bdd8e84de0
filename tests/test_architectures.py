"""The architectures core: models in the registry, layer tables, FLOPs, receptive fields,
diagrams, the race's shared setup, and the generative models' building blocks."""

import re

import numpy as np
import pytest
import torch
from torch import nn

import models
from models.blocks import DenseBlock, SeparableConv, SqueezeExcitation
from primer import architectures as arch
from primer import generative as gen
from primer.conv import receptive_field as analytic_field

torch.set_num_threads(1)


def plain_layers(stages: int, stem: bool = False):
    """The plain CNN's geometry as (kind, kernel, stride, dilation, padding) rows for primer.conv."""
    conv, pool = ("conv", 3, 1, 1, 1), ("pool", 2, 2, 1, 0)
    return ([conv] if stem else []) + [conv, conv, pool] * stages


# ---------------------------------------------------------------------------------------------
# Models


def test_the_six_designs_and_the_deep_pair_are_registered_classifiers():
    classifiers = set(models.names("classifier"))
    assert set(arch.DESIGNS) | set(arch.DEEP) <= classifiers
    assert {"unet_small", "dilated_segmenter"} <= set(models.names("segmenter"))
    assert {"center_detector", "mask_rcnn_small"} <= set(models.names("detector"))
    assert {"dae_small", "vae_small"} <= set(models.names("generative"))


def test_separable_conv_has_the_textbook_weight_count():
    c = 32
    block = SeparableConv(c, c)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.weight.numel() for m in convs) == 9 * c + c * c
    full = nn.Conv2d(c, c, 3, bias=False)
    assert full.weight.numel() == 9 * c * c


def test_dense_block_concatenates_every_layer():
    block = DenseBlock(8, growth=4, layers=3).eval()
    x = torch.randn(2, 8, 16, 16)
    out = block(x)
    assert out.shape == (2, 8 + 3 * 4, 16, 16) and block.out_channels == 20
    assert torch.equal(out[:, :8], x), "the block's input is passed on unchanged"
    # layer k reads everything before it: 8, 12, 16 input channels
    assert [layer[0].in_channels for layer in block.layers] == [8, 12, 16]


def test_squeeze_excitation_rescales_channels_by_a_gate_from_the_channel_means():
    se = SqueezeExcitation(8, reduction=4).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        means = x.mean(dim=(2, 3))  # (2, 8) the squeeze, by hand
        first, second = se.excite[0], se.excite[2]
        hidden = torch.relu(means @ first.weight[:, :, 0, 0].T + first.bias)
        gate = torch.sigmoid(hidden @ second.weight[:, :, 0, 0].T + second.bias)
        expected = x * gate[:, :, None, None]
        assert torch.allclose(se(x), expected, atol=1e-6)
        assert ((gate > 0) & (gate < 1)).all()


def test_unet_with_and_without_skips_keeps_the_resolution_and_passes_gradients():
    for skips in (True, False):
        net = models.build("unet_small", seed=0, width=4, skips=skips)
        x = torch.randn(2, 1, 64, 64, requires_grad=True)
        out = net(x)
        assert out.shape == (2, 1, 64, 64)
        out.sum().backward()
        assert x.grad.abs().sum() > 0
    with_skips = models.build("unet_small", width=4, skips=True)
    without = models.build("unet_small", width=4, skips=False)
    assert arch.parameter_count(without) < arch.parameter_count(with_skips)


@pytest.mark.parametrize("name", models.names("segmenter"))
@pytest.mark.parametrize("size", [48, 64])
def test_every_registered_segmenter_keeps_the_resolution_and_passes_gradients(name, size):
    net = models.build(name, seed=0, width=4)
    # a seeded input, and the whole output's gradient: one pixel's logit can sit behind ReLUs that
    # are all off for a given random image, which made this test depend on the tests before it
    x = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = net(x)
    assert out.shape == (2, 1, size, size)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    net.eval()
    x = torch.randn(2, 1, size, size, requires_grad=True)
    net(x)[0, 0].sum().backward()
    assert x.grad[0].abs().sum() > 0 and x.grad[1].abs().sum() == 0, "images do not leak into each other"


def test_center_detector_and_generative_model_shapes():
    det = models.build("center_detector", seed=0, width=8)
    heat, ltrb = det(torch.randn(3, 1, 64, 64))
    assert heat.shape == (3, 1, 16, 16) and ltrb.shape == (3, 4, 16, 16) and (ltrb > 0).all()
    dae = models.build("dae_small", seed=0, code_channels=4).eval()
    x = torch.rand(2, 1, 64, 64)
    assert dae.encode(x).shape == (2, 4, 16, 16)  # 1,024 numbers for 4,096 pixels
    out = dae(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    vae = models.build("vae_small", seed=0, latent_dim=3).eval()
    logits, mean, logvar = vae(torch.rand(5, 1, 32, 32))
    assert logits.shape == (5, 1, 32, 32) and mean.shape == logvar.shape == (5, 3)


# ---------------------------------------------------------------------------------------------
# Counting: FLOPs, parameters


def test_flop_count_of_one_convolution_matches_the_hand_count():
    conv = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False))
    flops = arch.flop_counts(conv, input_size=10, in_channels=3)
    assert flops[""] == 2 * 3 * 5 * 9 * 10 * 10  # 2 FLOPs per multiply-add, every output pixel


@pytest.mark.parametrize("name", [*arch.DESIGNS, "resnet_deep"])
def test_layer_table_adds_up_and_matches_a_forward_pass(name):
    model = models.build(name, seed=0, width=8)
    rows = arch.layer_table(model, 64)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert sum(r.flops for r in rows) == arch.flop_counts(model)[""]
    with torch.no_grad():
        features = model.eval().features(torch.zeros(1, 1, 64, 64))
    last_feature = [r for r in rows if r.name.startswith("features.")][-1]
    assert last_feature.output_shape == tuple(features.shape[1:])
    assert rows[-1].output_shape == (2,)


def test_parameters_do_not_depend_on_the_input_size_but_flops_do():
    model = models.build("resnet_small", seed=0, width=8)
    small, large = arch.layer_table(model, 32), arch.layer_table(model, 64)
    assert [r.params for r in small] == [r.params for r in large]
    conv_flops = sum(r.flops for r in small if r.kind != "linear")
    assert sum(r.flops for r in large if r.kind != "linear") == 4 * conv_flops


# ---------------------------------------------------------------------------------------------
# Receptive field: measured through the network, checked against the textbook recurrence


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_plain_cnn_receptive_field_matches_the_analytic_recurrence(stages):
    model = models.build("plain_cnn", seed=0, width=4, stages=stages)
    rows = arch.layer_table(model, 64)
    measured = [r.receptive_field for r in rows if r.name.startswith("features.")]
    expected = [row.size for row in analytic_field(plain_layers(stages))]
    assert measured == expected


def test_residual_field_is_its_longest_path_and_se_makes_it_global():
    # ResNet-small: stem conv, then per stage a residual block (two 3×3 on the long path) + pool.
    expected = analytic_field(plain_layers(3, stem=True))[-1].size
    assert arch.receptive_field(models.build("resnet_small", seed=0, width=4)) == expected
    # Inception's 5×5 branch is the widest path: stem + two blocks of 5×5 per stage + pool.
    five, pool = ("conv", 5, 1, 1, 2), ("pool", 2, 2, 1, 0)
    inception = [("conv", 3, 1, 1, 1)] + [five, five, pool] * 3
    assert arch.receptive_field(models.build("inception_cnn", seed=0, width=8)) == analytic_field(inception)[-1].size
    assert arch.receptive_field(models.build("se_resnet", seed=0, width=8)) is None


# ---------------------------------------------------------------------------------------------
# Diagrams


def edges(dot: str) -> int:
    return len(re.findall(r"->", dot))


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("resnet_small", '"+"'), ("dense_cnn", '"concat"'), ("inception_cnn", '"concat"'), ("se_resnet", '"×"')],
)
def test_block_diagram_shows_what_defines_the_design(name, symbol):
    model = models.build(name, seed=0, width=8)
    dot = arch.block_dot(arch.signature_block(model), {})
    assert dot.startswith("digraph") and dot.count("{") == dot.count("}")
    assert symbol in dot
    graph = torch.fx.symbolic_trace(arch.signature_block(model)) if name != "dense_cnn" else None
    if graph is not None:
        assert edges(dot) >= 2


def test_macro_diagram_merges_runs_of_identical_blocks():
    rows = arch.layer_table(models.build("plain_deep", seed=0, width=4), 64)
    dot = arch.macro_dot(rows, {"plain_pair": "pair"})
    assert "pair × 4" in dot  # the first stage's four same-shape pairs merged
    assert edges(dot) == len(re.findall(r"^n\d+ \[", dot, re.M))  # a chain: one edge into every box


# ---------------------------------------------------------------------------------------------
# Gradient flow and the race's shared setup


def test_gradient_spread_grows_with_depth_in_plain_but_not_residual_stacks():
    plain, residual = (arch.gradient_flow(n, 6, width=4, batch=16) for n in arch.DEEP)
    assert len(plain.grad_norm) == len(residual.grad_norm) == 1 + 2 * 3 * 6
    spread = lambda f: max(f.grad_norm) / min(f.grad_norm)  # noqa: E731
    assert spread(plain) > 5 * spread(residual)


def test_race_trains_every_design_on_the_same_split():
    from primer.train import phantom_data, split

    lab = arch.RaceLab(num_images=120, num_epochs=1)
    labs = lab.train_labs()
    assert [t.model for t in labs] == lab.chosen() == ["plain_cnn", "resnet_small", "separable_cnn"]
    configs = {(t.phantom_config(), t.split_config()) for t in labs}
    assert len(configs) == 1, "one data set and one split for every racer"
    splits = split(phantom_data(labs[0].phantom_config()), labs[0].split_config())
    assert len(splits.train) + len(splits.val) + len(splits.test) == 120


def test_race_entry_reads_the_epochs():
    from primer.train import EpochRecord

    epochs = [EpochRecord(e, 0.5, 0.7, 0.6, 0.7, auc, 1.5 * e) for e, auc in ((1, 0.81), (2, 0.82))]
    entry = arch.race_entry("separable_cnn", 8, epochs)
    assert entry.val_auc == (0.81, 0.82) and entry.epoch_seconds == (1.5, 3.0) and entry.seconds == 3.0
    assert entry.params == arch.parameter_count(models.build("separable_cnn", width=8))
    assert np.isnan(entry.test_auc)


# ---------------------------------------------------------------------------------------------
# Generative helpers


def test_vae_loss_kl_matches_the_closed_form_and_vanishes_at_the_prior():
    x = torch.rand(4, 1, 32, 32)
    logits = torch.zeros_like(x)
    mean, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
    _, _, kl = gen.vae_loss(logits, x, mean, logvar, 1.0)
    assert kl.item() == pytest.approx(0.0, abs=1e-7)
    mean, logvar = torch.full((4, 2), 1.0), torch.full((4, 2), np.log(2.0))
    # KL(N(1, 2) || N(0, 1)) per dimension = 0.5 (σ² + μ² − 1 − ln σ²)
    expected = 2 * 0.5 * (2.0 + 1.0 - 1.0 - np.log(2.0))
    _, _, kl = gen.vae_loss(logits, x, mean, logvar, 1.0)
    assert kl.item() == pytest.approx(expected, rel=1e-5)


def test_interpolation_starts_and_ends_at_the_two_latent_means():
    vae = models.build("vae_small", seed=0, latent_dim=2).eval()
    a, b = torch.rand(32, 32).numpy(), torch.rand(32, 32).numpy()
    z, strip = gen.interpolate(vae, a, b, steps=5)
    means = gen.latent_means(vae, np.stack([a, b]))
    assert np.allclose(z[0], means[0], atol=1e-6) and np.allclose(z[-1], means[1], atol=1e-6)
    assert strip.shape == (5, 32, 32) and np.allclose(strip[0], gen.decode(vae, means[:1])[0], atol=1e-6)


def test_denoise_scores_with_skimage_against_the_clean_patch():
    from skimage.metrics import peak_signal_noise_ratio

    dae = models.build("dae_small", seed=0).eval()
    clean = np.clip(np.random.default_rng(0).random((64, 64)), 0, 1).astype(np.float32)
    result = gen.denoise(dae, clean, 0.1, seed=3)
    noisy = np.clip(gen.add_noise(clean, 0.1, 3), 0, 1)
    assert result.psnr["noisy"] == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=1.0))
    assert result.psnr["noisy"] == pytest.approx(10 * np.log10(1 / np.mean((clean - noisy) ** 2)))


# ---------------------------------------------------------------------------------------------
# The chapter's own training loops go through the one process-wide training queue


def test_work_jobs_share_the_training_queue_take_turns_and_stop():
    import threading
    import time

    from primer.jobs import TrainingQueue

    queue = TrainingQueue(max_concurrent=1, threads_per_job=1)
    lock, active, peak = threading.Lock(), [0], [0]

    def work(job):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            for epoch in range(3):
                if job.should_stop():
                    return None
                time.sleep(0.03)
                job.add_epoch(epoch, latest=f"picture {epoch}")
            return "model"
        finally:
            with lock:
                active[0] -= 1

    def wait(job):
        deadline = time.monotonic() + 20
        while not job.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.finished

    detector = queue.submit_work("det:3.0:3:0", work, total_epochs=3)
    unet = queue.submit_work("seg:3.0:3:0:True", work, total_epochs=3)
    assert queue.submit_work("det:3.0:3:0", work, total_epochs=3) is detector, "identical settings share a run"
    time.sleep(0.01)
    assert unet.position() == 1 and unet.state == "queued"
    wait(detector), wait(unet)
    assert peak[0] == 1, "never two runs at once on a one-slot queue"
    assert detector.result == "model" and detector.epochs == [0, 1, 2] and detector.progress == 1.0
    assert detector.latest == "picture 2" and detector.kind == "work"

    slow = queue.submit_work("vae:2:1.0:12:0", work, total_epochs=3)
    slow.release()
    wait(slow)
    assert slow.state == "stopped"
    again = queue.submit_work("vae:2:1.0:12:0", work, total_epochs=3)
    assert again is not slow, "a stopped run is redone"
    wait(again)


def ssim_by_hand(x: np.ndarray, y: np.ndarray, win: int = 7, data_range: float = 1.0) -> float:
    """Wang et al.'s SSIM with a uniform 7×7 window and sample covariances, written out: local
    means, variances and covariance, the two-term formula, averaged away from the borders."""
    from scipy.ndimage import uniform_filter

    x, y = x.astype(np.float64), y.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win * win
    mx, my = uniform_filter(x, win), uniform_filter(y, win)
    vx = (uniform_filter(x * x, win) - mx * mx) * n / (n - 1)
    vy = (uniform_filter(y * y, win) - my * my) * n / (n - 1)
    cxy = (uniform_filter(x * y, win) - mx * my) * n / (n - 1)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    pad = win // 2
    return float(s[pad:-pad, pad:-pad].mean())


def test_denoise_ssim_matches_the_formula_and_works_before_training():
    rng = np.random.default_rng(1)
    clean = np.clip(rng.random((64, 64)) * 0.5 + 0.25, 0, 1).astype(np.float32)
    untrained = gen.denoise(None, clean, 0.2, seed=5)
    assert untrained.output is None and set(untrained.psnr) == set(untrained.ssim) == {"noisy", "blurred"}
    noisy = np.clip(gen.add_noise(clean, 0.2, 5), 0, 1)
    assert untrained.ssim["noisy"] == pytest.approx(ssim_by_hand(clean, noisy), abs=1e-6)
    assert untrained.ssim["blurred"] == pytest.approx(ssim_by_hand(clean, untrained.blurred), abs=1e-6)
    assert gen.denoise(None, clean, 0.0, seed=5).ssim["noisy"] == pytest.approx(1.0)
