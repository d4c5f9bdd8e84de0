"""The self-supervised lab: the NT-Xent loss against a hand computation, the label budgets, a
known answer (no pretraining = the untrained features), a tiny run, and the page."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from primer import future_selfsup as fss
from tests.conftest import assert_no_exception, run_page, wait_until_done

PAGE = "views/future.py"


def nt_xent_by_hand(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """SimCLR's loss written out view by view, with cosine similarities."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2, n = len(z), len(z1)
    total = 0.0
    for i in range(n2):
        pair = (i + n) % n2
        denominator = sum(math.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(z[i] @ z[pair] / tau) / denominator)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_nt_xent_matches_the_loss_written_out_by_hand(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert fss.nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_by_hand(z1.numpy(), z2.numpy(), tau), rel=1e-5)


def test_nt_xent_known_answers():
    # every view identical: the pair is one of 2N - 1 equal candidates
    z = torch.ones(4, 3)
    assert fss.nt_xent(z, z, 0.5).item() == pytest.approx(math.log(7), rel=1e-6)
    # pairs identical and orthogonal to every other image: the partner scores e^(1/τ), the six
    # other views e^0 each
    eye = torch.eye(4)
    for tau in (1.0, 0.5):
        expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 6))
        assert fss.nt_xent(eye, eye, tau).item() == pytest.approx(expected, rel=1e-5)
    # swapping the pairs' order in one half breaks them: a higher loss
    assert fss.nt_xent(eye, eye.flip(0), 0.5) > fss.nt_xent(eye, eye, 0.5)


def test_budgets_are_balanced_and_nested():
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1, 0] * 60)
    previous = set()
    for budget in fss.BUDGETS:
        index = fss.budget_index(labels, budget)
        assert len(index) == budget and int(labels[index].sum()) == budget // 2
        assert previous <= set(index.tolist())  # a larger budget keeps every image of a smaller one
        previous = set(index.tolist())


def test_linear_probe_equals_sklearn_logistic_regression_on_standardised_features():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 6)), rng.integers(0, 2, 80)
    x[:, 0] += y  # one informative feature
    test_x, test_y = rng.normal(size=(200, 6)), rng.integers(0, 2, 200)
    test_x[:, 0] += test_y
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x), y)
    expected = roc_auc_score(test_y, clf.predict_proba(scaler.transform(test_x))[:, 1])
    assert fss.linear_probe_auc(x, y, test_x, test_y) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.65


@pytest.fixture
def tiny(monkeypatch):
    """The whole pipeline at toy scale: 32 px, a 256-image pool, three budgets."""
    monkeypatch.setattr(fss, "BUDGETS", (20, 50, 100))
    monkeypatch.setattr(fss, "LABELLED_POOL", 120)
    monkeypatch.setattr(fss, "TEST_IMAGES", 200)
    monkeypatch.setattr(fss, "OTHER_IMAGES", 200)
    monkeypatch.setattr(fss, "SCRATCH_STEPS", 6)
    fss.data.cache_clear()
    yield
    fss.data.cache_clear()


def test_tiny_run_streams_loss_then_budgets_and_scores_every_reader(tiny):
    lab = fss.SelfSupLab(pool_size=256, pretrain_epochs=2, batch_size=64, image_size=32)
    records = []
    result = fss.run(lab, on_step=records.append)
    stages = [r.stage for r in records]
    assert stages == ["pretrain"] * 3 + ["supervised"] + ["budget"] * 3  # 8 steps, a report every 3 and the last
    assert len(result.losses) == 8 and all(math.isfinite(v) for v in result.losses)
    assert len(records) == fss.expected_records(lab)
    assert sorted((p.reader, p.labels) for p in result.points) == sorted(
        (r, b) for r in fss.READERS for b in (20, 50, 100)
    )
    assert all(0 <= p.test_auc <= 1 for p in result.points)
    xy = fss.embedding(result, "selfsup")
    assert xy.shape == (200, 2) and fss.embedding(result, "selfsup") is xy  # computed once
    assert fss.budget_figure(result, 50, {k: k for k in (*fss.READERS, "labels", "auc", "chance")})
    words = {"emb_random": "a", "emb_selfsup": "b", "class0": "c", "class1": "d"}
    assert fss.embedding_figure(result, "pca", words)


def test_without_pretraining_the_self_supervised_reader_is_the_untrained_network(tiny):
    lab = fss.SelfSupLab(pool_size=256, pretrain_epochs=0, image_size=32)
    result = fss.run(lab)
    assert result.losses == []
    # the same weights; only the memory layout (channels-last for training) differs, hence rounding
    np.testing.assert_allclose(result.test_features["selfsup"], result.test_features["random"], rtol=1e-5, atol=1e-6)
    for budget in (20, 50, 100):
        assert result.auc("selfsup", budget) == pytest.approx(result.auc("random", budget), abs=2e-3)


def test_contrastive_pretraining_lowers_the_loss_on_new_views():
    lab = fss.SelfSupLab(pool_size=512, pretrain_epochs=3, batch_size=64, image_size=32)
    pool = fss.data(lab.pool_size, lab.image_size, lab.seed).pool
    encoder, losses = fss.pretrain_contrastive(lab, pool)
    held_out = fss.data(lab.pool_size, lab.image_size, lab.seed).test.x[:128]

    def loss_of(enc) -> float:
        g = torch.Generator().manual_seed(99)
        views = fss.augment(torch.cat([held_out, held_out]), fss.VIEW_AUGMENT, g)
        with torch.no_grad():
            z = enc.eval().embed(views)
        return fss.nt_xent(z[:128], z[128:], lab.temperature).item()

    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert loss_of(encoder) < loss_of(fss.build_encoder(lab.seed))  # on images it never saw


def texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.error))


def test_page_controls_preset_and_a_small_run():
    at = run_page(PAGE)
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.number_input) if w.key}
    assert {"selfsup.pool_size", "selfsup.pretrain_epochs", "selfsup.temperature", "selfsup.batch_size"} <= keys
    at.selectbox(key="presetpick.selfsup").set_value("no_pretraining")
    at.button(key="presetapply.selfsup").click().run()
    assert at.slider(key="selfsup.pretrain_epochs").value == 0
    at.select_slider(key="selfsup.pool_size").set_value(500)
    at.slider(key="selfsup.pretrain_epochs").set_value(1)
    at.select_slider(key="selfsup.image_size").set_value(32).run()
    at.button(key="future.selfsup.train").click().run()
    assert_no_exception(at)
    job = at.session_state["future.selfsup.job"]
    wait_until_done(job)
    at.run()
    assert_no_exception(at)
    assert "after self-supervised pretraining" in texts(at)
    at.select_slider(key="selfsup.budget").set_value(200).run()  # display only: no retraining
    assert_no_exception(at)
    assert at.session_state["future.selfsup.job"] is job
    assert "Test AUC with 200 labelled images" in texts(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Self-supervised"] == f"{job.result.auc('selfsup', 200):.3f}"
    assert shown["From scratch"] == f"{job.result.auc('scratch', 200):.3f}"


def test_the_small_pool_preset_takes_twelve_pretraining_steps():
    """The preset's commentary: 500 unlabelled images in batches of 128, four epochs."""
    lab = fss.SelfSupLab(pool_size=500, image_size=32)
    records = []
    pool = torch.randn(500, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    _, losses = fss.pretrain_contrastive(lab, pool, on_step=records.append)
    assert len(losses) == 12 and records[-1].total == 12
