"""Domain-shift lab: its core against independent computations, then the page in AppTest."""

import time

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from primer import future_shift as fs
from primer import validation as val
from primer.train import TrainConfig, predict
from tests.conftest import assert_no_exception, run_page

TINY = dict(num_images=500, num_epochs=1, b_images=300, adapt_images=200)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(2)
    lab = fs.ShiftLab(shift="scale", b_level=0.5, **TINY)
    return lab, fs.train_base(lab), fs.train_augmented(lab)


def test_adabn_running_stats_equal_the_layer_inputs_over_b():
    model = val.build(TrainConfig(num_epochs=1, seed=3))
    x = torch.randn(64, 1, 64, 64) * 0.5 + 0.7  # "site B": a shifted, rescaled input
    adapted = fs.adapt_batchnorm(model, x)
    norms = [m for m in adapted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms, "the lab's model has batch-norm layers"
    inputs = {}
    hooks = [bn.register_forward_hook(lambda m, args, _out: inputs.__setitem__(m, args[0].detach())) for bn in norms]
    with torch.no_grad():
        adapted.eval()(x)  # eval mode uses the running stats: the same inputs as the adaptation pass
    for h in hooks:
        h.remove()
    for bn in norms:
        z = inputs[bn].double()
        dims = [0, 2, 3]
        torch.testing.assert_close(bn.running_mean.double(), z.mean(dims), rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(bn.running_var.double(), z.var(dims, unbiased=True), rtol=1e-3, atol=1e-4)
    # the weights are untouched, and the original model keeps A's statistics
    for (name, p), q in zip(model.named_parameters(), adapted.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert not torch.equal(model.state_dict()[f"{_first_bn(model)}.running_mean"], norms[0].running_mean)


def _first_bn(model):
    return next(n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


@pytest.mark.parametrize("shift,level", [("scale", 0.5), ("noise", 0.8), ("spacing", 0.6), ("scale", 1.7)])
def test_normalisation_gives_each_site_zero_mean_unit_std(shift, level):
    lab = fs.ShiftLab(shift=shift, b_level=level)
    for images, _ in (fs.site_b_raw(lab, 200, 5), val.site_images(val.SITE_A, 200, 6)):
        x, _ = fs.standardize_own(images)
        assert abs(float(x.double().mean())) < 1e-5
        assert abs(float(x.double().std(unbiased=False)) - 1) < 1e-5


def test_b_equal_to_a_takes_the_same_preprocessing_path():
    lab = fs.ShiftLab(shift="noise", b_level=val.SITE_A.noise_std)
    images, labels = fs.site_b_raw(lab, 100, 11)
    reference, phantoms = val.site_images(val.SITE_A, 100, 11)
    assert np.array_equal(images, reference) and np.array_equal(labels, phantoms.labels)
    lab = fs.ShiftLab(shift="spacing", b_level=1.0)
    assert np.array_equal(fs.site_b_raw(lab, 100, 11)[0], reference)


def test_b_equal_to_a_shows_no_drop_beyond_seed_noise(trained):
    lab, base, aug = trained
    same = fs.ShiftLab(shift="scale", b_level=1.0, **TINY)
    report = fs.shift_report(same, base, aug)
    se = np.hypot(report.internal.auc.standard_error, report.arms["none"].auc.standard_error)
    assert abs(report.drop) < 1.96 * se + 1e-9


def test_report_aucs_match_sklearn(trained):
    lab, base, aug = trained
    report = fs.shift_report(lab, base, aug)
    images, labels = fs.site_b_raw(lab, lab.b_images, lab.seed + val.SITE_B_SEED_OFFSET)
    model = base.model()
    deployed = (torch.from_numpy(images).unsqueeze(1) - base.prep.mean) / base.prep.std
    own = (torch.from_numpy(images).unsqueeze(1) - images.mean()) / images.std()
    expected = {
        "none": roc_auc_score(labels, predict(model, deployed)[:, 1].numpy()),
        "normalize": roc_auc_score(labels, predict(model, own)[:, 1].numpy()),
        "augment": roc_auc_score(labels, predict(aug.model(), deployed)[:, 1].numpy()),
    }
    for name, auc in expected.items():
        assert report.arms[name].auc.auc == pytest.approx(auc, abs=1e-4), name
    assert report.internal.auc.auc == pytest.approx(roc_auc_score(base.test_labels, base.test_probs), abs=1e-9)
    assert report.drop == pytest.approx(report.internal.auc.auc - report.arms["none"].auc.auc)
    assert abs(report.b_mean - float(deployed.mean())) < 1e-4


def test_covering_augmentation_spans_the_slider_range():
    x = torch.zeros(400, 1, 8, 8)
    prep = val.Preprocessing(mean=0.0, std=1.0)
    gains = fs.covering_augmentation(x + 1, prep, "scale", 0).flatten(1)[:, 0]
    assert 0.5 <= float(gains.min()) < 0.6 and 1.9 < float(gains.max()) <= 2.0
    noisy = fs.covering_augmentation(x, prep, "noise", 0).flatten(1).std(1)
    assert float(noisy.max()) > 0.8  # up to sqrt(1.0² − 0.25²) ≈ 0.97 extra noise
    with pytest.raises(ValueError):
        fs.covering_augmentation(x, prep, "contrast", 0)


def test_check_rejects_bad_combinations():
    assert fs.check(fs.ShiftLab()) is None
    assert fs.check(fs.ShiftLab(shift="spacing", b_level=2.0)) == "shift.error.out_of_range"
    assert fs.check(fs.ShiftLab(shift="beta")) == "shift.error.unknown_shift"


# ---------------------------------------------------------------------------------------------
# The page

PAGE = "views/future.py"
PAGE_TINY = {"shift.num_images": "500", "shift.num_epochs": "1", "shift.b_images": "300"}


def texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.subheader, *at.info, *at.error))


def test_page_shows_the_controls_and_a_preset_sets_them():
    at = run_page(PAGE)
    assert_no_exception(at)
    assert {"shift.b_level", "shift.num_epochs"} <= {w.key for w in at.slider}
    assert "future.shift.train" in {b.key for b in at.button}
    at.selectbox(key="presetpick.shift").set_value("noisier")
    at.button(key="presetapply.shift").click().run()
    assert_no_exception(at)
    assert at.slider(key="shift.b_level").value == pytest.approx(0.8)
    assert "noise std" in at.slider(key="shift.b_level").label


def test_a_tiny_run_trains_both_models_and_scores_b_four_ways():
    at = run_page(PAGE, query=PAGE_TINY)
    at.button(key="future.shift.train").click().run()
    assert_no_exception(at)
    jobs = at.session_state["future.shift.jobs"]
    deadline = time.monotonic() + 300
    while not all(job.finished for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [job.state for job in jobs] == ["done", "done"], [job.error for job in jobs]
    at.run()
    assert_no_exception(at)
    labels = {m.label for m in at.metric}
    assert {"B without remedy", "B, AdaBN", "B, own normalisation", "B, augmented model"} <= labels
    assert "std 0.5" in texts(at)  # B at half A's gain reaches the model at half the std
    # moving B's level re-scores B, no retraining
    at.slider(key="shift.b_level").set_value(1.0).run()
    assert_no_exception(at)
    assert at.session_state["future.shift.jobs"] is jobs
    assert "std 1.0" in texts(at)  # B == A: the same preprocessing path


def test_an_out_of_range_level_is_clamped_when_the_property_changes():
    at = run_page(PAGE, query={"shift.b_level": "1.8"})
    assert at.slider(key="shift.b_level").value == pytest.approx(1.8)
    at.session_state["shift.shift"] = "spacing"
    at.run()
    assert_no_exception(at)
    assert at.slider(key="shift.b_level").value == pytest.approx(1.0)  # clamped into 0.5-1.0
