"""The uncertainty lab's core against independent computations, and its page."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

import models
from primer import explain
from primer import future_uncertainty as fu
from primer.train import predict

TINY = fu.UncertaintyLab(num_models=2, num_images=300, num_epochs=1, mc_passes=5)


def test_coverage_curve_by_hand():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    probs = rng.random(40)
    u = rng.random(40)
    curve = fu.coverage_curve(labels, probs, u, [1.0, 0.75, 0.5])
    for c, err, auc in zip([1.0, 0.75, 0.5], curve.error, curve.auc, strict=True):
        n = int(round(c * 40))
        keep = sorted(range(40), key=lambda i: u[i])[:n]
        wrong = [(probs[i] >= 0.5) != (labels[i] == 1) for i in keep]
        assert err == pytest.approx(sum(wrong) / n)
        assert auc == pytest.approx(roc_auc_score(labels[keep], probs[keep]))


def test_entropy_matches_scipy():
    p = np.array([0.01, 0.3, 0.5, 0.9])
    expected = [entropy([q, 1 - q], base=2) for q in p]
    np.testing.assert_allclose(fu.binary_entropy(p), expected, rtol=1e-9)


def test_reliability_matches_sklearn():
    rng = np.random.default_rng(1)
    probs = rng.random(500)
    labels = (rng.random(500) < probs).astype(int)
    bins = fu.reliability(labels, probs)
    true, pred = calibration_curve(labels, probs, n_bins=10, strategy="uniform")
    filled = bins.counts > 0
    np.testing.assert_allclose(bins.observed_frequency[filled], true)
    np.testing.assert_allclose(bins.mean_predicted[filled], pred)


def test_identical_members_do_not_disagree():
    net = models.build("plain_cnn", seed=0, width=4, dropout=0.2).eval()
    x = torch.randn(8, 1, 64, 64)
    answers = fu.Answers(fu.ensemble_member_probs([net, net, net], x))
    np.testing.assert_allclose(answers.uncertainty("std"), 0.0, atol=1e-12)
    np.testing.assert_allclose(answers.uncertainty("mutual_info"), 0.0, atol=1e-9)
    np.testing.assert_allclose(answers.probs, predict(net, x)[:, 1].double().numpy(), atol=1e-6)


def test_mc_dropout_without_dropout_is_deterministic():
    net = models.build("plain_cnn", seed=0, width=4, dropout=0.0).eval()
    x = torch.randn(8, 1, 64, 64)
    samples = fu.mc_dropout_probs(net, x, passes=4)
    expected = predict(net, x)[:, 1].double().numpy()
    for row in samples:
        np.testing.assert_allclose(row, expected, atol=1e-6)


def test_mc_dropout_shortcut_equals_full_passes():
    net = models.build("plain_cnn", seed=0, width=4, dropout=0.3).eval()
    x = torch.randn(6, 1, 64, 64)
    fast = fu.mc_dropout_probs(net, x, passes=3, seed=5)
    g = torch.Generator().manual_seed(5)
    net.dropout.train()
    net.dropout.generator = g
    with torch.no_grad():
        full = np.stack([torch.softmax(net(x), 1)[:, 1].double().numpy() for _ in range(3)])
    net.dropout.eval()
    np.testing.assert_allclose(fast, full, atol=1e-6)
    assert fast.std(0).max() > 0  # dropout on: the passes differ


def test_tiny_run_scores_every_group():
    members = [fu.train_member(TINY, k) for k in range(TINY.num_models)]
    scores = fu.score_groups(TINY, members)
    for method in fu.METHODS:
        assert set(scores[method]) == set(fu.GROUPS)
        for answers in scores[method].values():
            assert np.isfinite(answers.uncertainty("entropy")).all()
    assert scores["mc"]["test"].samples.shape[0] == TINY.mc_passes
    assert scores["ensemble"]["test"].samples.shape[0] == TINY.num_models
    # MC dropout runs on the member with the best validation AUC: its passes average (p = 0.1 is
    # small) to about that member's deterministic answer, not the other member's
    best = fu.mc_member(members)
    assert best == int(np.argmax([m.epochs[-1].val_auc for m in members]))
    x = fu.group_images(TINY.num_images, TINY.seed)["test"][0]
    chosen = fu.ensemble_member_probs([fu.load(TINY, members[best])], x)[0]
    mc = fu.mc_dropout_probs(fu.load(TINY, members[best]), x, TINY.mc_passes, seed=TINY.seed)
    np.testing.assert_allclose(scores["mc"]["test"].samples, mc)
    assert np.abs(mc.mean(0) - chosen).mean() < 0.1
    # the feature distance: the MC network's own, and the ensemble's the mean of its members'
    for method in fu.METHODS:
        for answers in scores[method].values():
            assert answers.uncertainty("distance").shape == answers.probs.shape
            assert (answers.uncertainty("distance") >= 0).all()
    train = fu.val.site_a_splits(TINY.num_images, TINY.seed)[0].train
    fit_x, fit_y = train.x[: fu.FEATURE_FIT_IMAGES], train.y[: fu.FEATURE_FIT_IMAGES].numpy()
    nets = [fu.load(TINY, m) for m in members]
    per_member = [fu.FeatureDistance(n, fit_x, fit_y)(explain.features(n, x)) for n in nets]
    np.testing.assert_allclose(scores["mc"]["test"].distance, per_member[best])
    np.testing.assert_allclose(scores["ensemble"]["test"].distance, np.mean(per_member, 0))


class _Identity(torch.nn.Module):
    """A "network" whose penultimate features are its input: the distance is then checkable by hand."""

    def embed(self, x):
        return x


def test_feature_distance_matches_scipy_mahalanobis():
    from scipy.spatial.distance import mahalanobis
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, -1.0, 2.0]])
    features = centres[y] + rng.normal(size=(300, 3)) @ np.array([[1.0, 0.5, 0], [0, 1.0, 0.3], [0, 0, 0.5]])
    dist = fu.FeatureDistance(_Identity(), torch.from_numpy(features), y)
    means = np.stack([features[y == c].mean(0) for c in (0, 1)])
    shrunk, _ = ledoit_wolf(features - means[y], assume_centered=True)  # the shared within-class covariance
    precision = np.linalg.inv(shrunk)
    queries = rng.normal(size=(20, 3)) * 4
    expected = [min(mahalanobis(q, m, precision) ** 2 for m in means) for q in queries]
    np.testing.assert_allclose(dist(queries), expected, rtol=1e-8)
    np.testing.assert_allclose(dist(means), 0.0, atol=1e-12)  # a class mean is at distance 0
    far = dist(means[:1] + 100.0)
    assert far[0] > dist(features).max()  # far from every training image: larger than any of them


# ---------------------------------------------------------------------------------------------
# Page

PAGE = "views/future.py"
QUERY = {"uncertainty.num_models": "2", "uncertainty.num_images": "500", "uncertainty.num_epochs": "1"}


def _texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.subheader, *at.info, *at.warning))


def test_page_controls_preset_run_and_message():
    import time

    from tests.conftest import assert_no_exception, run_page

    at = run_page(PAGE, query=QUERY)
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.number_input) if w.key}
    assert {"uncertainty.num_models", "uncertainty.refer_percent", "uncertainty.mc_passes"} <= keys
    at.selectbox(key="presetpick.uncertainty").set_value("refer_thirty")
    at.button(key="presetapply.uncertainty").click().run()
    assert at.slider(key="uncertainty.refer_percent").value == 30
    at.button(key="future.uncertainty.train").click().run()
    deadline = time.monotonic() + 240
    jobs = at.session_state["future.uncertainty.jobs"]
    while not all(job.finished for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(job.state == "done" for job in jobs), [job.error for job in jobs]
    at.run()
    assert_no_exception(at)
    assert "Referral of uncertain cases" in _texts(at)
    assert len(at.get("plotly_chart")) >= 3
    at.slider(key="uncertainty.refer_percent").set_value(20).run()  # display only: no new jobs
    assert at.session_state["future.uncertainty.jobs"] is jobs
    at.selectbox(key="presetpick.uncertainty").set_value("no_dropout")
    at.button(key="presetapply.uncertainty").click().run()
    assert "dropout 0" in _texts(at)
