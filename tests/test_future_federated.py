"""The federated-learning lab: FedAvg against plain training and a hand-computed average, the
AUCs against scikit-learn, the hospitals' split, and the page."""

import time

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from primer import future_federated as fl
from primer.train import fit
from primer.validation import build
from tests.conftest import assert_no_exception, run_page

PAGE = "views/future.py"
TINY = {
    "num_hospitals": 3,
    "num_images": 400,
    "rounds": 1,
    "local_epochs": 1,
    "clients_per_round": 3,
    "new_images": 100,
}


@pytest.fixture
def small_test_sets(monkeypatch):
    """Each hospital keeps 60 test patients instead of 200 (the tests' data stays tiny)."""
    monkeypatch.setattr(fl, "TEST_IMAGES", 60)
    fl._federation.cache_clear()
    yield
    fl._federation.cache_clear()


def test_fedavg_with_one_client_and_one_round_is_plain_training(small_test_sets):
    lab = fl.FederatedLab(**TINY)
    hospital = fl.federation(lab).hospitals[0]
    config = lab.train_config()
    federated = build(config)
    history = fl.federated_averaging(
        federated, [hospital.splits], config, rounds=1, local_epochs=2, clients_per_round=1
    )
    assert [(h.round, h.clients, h.weights) for h in history] == [(1, [0], [hospital.num_train])]
    plain = build(config)
    fit(plain, hospital.splits, config.replace(num_epochs=2))
    ours, reference = federated.state_dict(), plain.state_dict()
    assert ours.keys() == reference.keys()
    for name in reference:
        assert torch.equal(ours[name], reference[name]), name


def test_aggregate_is_the_sample_weighted_average_including_batchnorm_buffers():
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)) for _ in range(3)]
    for k, net in enumerate(nets):  # different running statistics and step counts per client
        net.train()
        for _ in range(k + 1):
            net(torch.randn(8, 3) * (k + 1) + k)
    states = [n.state_dict() for n in nets]
    sizes = [600, 300, 100]
    out = fl.aggregate(states, sizes)
    # by hand, in numpy: Σ n_k w_k / Σ n_k
    for name in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        expected = sum(n * s[name].numpy().astype(np.float64) for n, s in zip(sizes, states, strict=True)) / 1000
        np.testing.assert_allclose(out[name].numpy(), expected, rtol=1e-6, atol=1e-7)
        assert out[name].dtype == torch.float32
    # the integer step counter is not averaged: the largest count, still an integer
    assert [int(s["1.num_batches_tracked"]) for s in states] == [1, 2, 3]
    assert out["1.num_batches_tracked"].dtype == torch.int64 and int(out["1.num_batches_tracked"]) == 3
    # the quiz's example: 600, 300, 100 images with values 0.2, 0.5, 1.0 give 0.37 (plain mean 0.57)
    quiz = fl.aggregate([{"w": torch.tensor([v])} for v in (0.2, 0.5, 1.0)], sizes)
    assert quiz["w"].item() == pytest.approx(0.37)
    # equal sizes give the plain mean
    assert fl.aggregate([{"w": torch.tensor([v])} for v in (0.2, 0.5, 1.0)], [5, 5, 5])["w"].item() == pytest.approx(
        (0.2 + 0.5 + 1.0) / 3
    )


def test_hospitals_are_split_by_patient_and_sizes_follow_non_iid():
    assert fl.hospital_sizes(600, 4, 0.0) == [150, 150, 150, 150]
    sizes = fl.hospital_sizes(600, 4, 1.0)
    assert sum(sizes) == 600 and sizes == sorted(sizes, reverse=True) and sizes[0] > 2 * sizes[-1]
    same = fl.hospital_acquisitions(3, 0.0)
    assert all(a == fl.REFERENCE for a in same)
    assert fl.hospital_acquisitions(3, 1.0)[1].prevalence == pytest.approx(0.2)
    assert fl.choose_clients(5, 5, 3, 0) == [0, 1, 2, 3, 4]
    picked = fl.choose_clients(5, 2, 3, 0)
    assert len(picked) == 2 and picked == fl.choose_clients(5, 2, 3, 0)
    assert fl.FederatedLab(num_hospitals=3, clients_per_round=4).problem() == "federated.bad.clients"
    assert fl.FederatedLab().problem() is None


def test_tiny_comparison_aucs_match_sklearn_and_no_patient_is_shared(small_test_sets):
    lab = fl.FederatedLab(**TINY)
    seen = []
    result = fl.run_comparison(lab, on_step=seen.append)
    assert not result.stopped
    # one record per round, then per epoch of each local model and of the centralized one
    assert [s.method for s in seen] == ["fedavg", "local:0", "local:1", "local:2", "central"]
    assert len(seen) == lab.total_steps()
    assert set(result.auc) == {"fedavg", "central", "local:0", "local:1", "local:2"}
    for method, by_set in result.auc.items():
        for name, interval in by_set.items():
            expected = roc_auc_score(result.labels[name], result.probs[method][name])
            assert interval.auc == pytest.approx(expected, abs=1e-9), (method, name)
            assert interval.low <= interval.auc <= interval.high
    assert result.local_mean_auc("new") == pytest.approx(
        np.mean([result.auc[f"local:{k}"]["new"].auc for k in range(3)])
    )
    fed = fl.federation(lab)
    ids = [set(h.splits.train.patient.tolist()) | set(h.splits.test.patient.tolist()) for h in fed.hospitals]
    ids.append(set(fed.new.patient.tolist()))
    assert sum(len(s) for s in ids) == len(set().union(*ids)), "every patient belongs to one hospital"
    assert len(fed.new) == 100 and all(len(h.splits.test) == 60 for h in fed.hospitals)


def wait(at, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = at.session_state["future.federated.job"]
        if job.finished:
            return job
        time.sleep(0.2)
    raise AssertionError("the federated run did not finish")


def texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.error, *at.warning))


def test_page_controls_preset_bad_combination_and_a_tiny_run(small_test_sets):
    at = run_page(PAGE)
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.number_input) if w.key}
    assert {
        "federated.num_hospitals",
        "federated.non_iid",
        "federated.rounds",
        "federated.local_epochs",
        "federated.clients_per_round",
        "federated.num_images",
        "federated.seed",
    } <= keys
    at.selectbox(key="presetpick.federated").set_value("drift")
    at.button(key="presetapply.federated").click().run()
    assert_no_exception(at)
    assert at.slider(key="federated.rounds").value == 2
    assert at.slider(key="federated.local_epochs").value == 4
    # a bad combination: 5 hospitals per round in a federation of 3
    at.slider(key="federated.num_hospitals").set_value(3)
    at.slider(key="federated.clients_per_round").set_value(5).run()
    assert "5 hospitals per round, but the federation has only 3" in texts(at)
    assert at.button(key="future.federated.train").disabled
    # a tiny real run through the queue
    at.slider(key="federated.clients_per_round").set_value(3)
    at.slider(key="federated.rounds").set_value(1)
    at.slider(key="federated.local_epochs").set_value(1)
    at.select_slider(key="federated.num_images").set_value(400).run()
    at.button(key="future.federated.train").click().run()
    assert_no_exception(at)
    job = wait(at)
    assert job.state == "done", job.error
    at.run()
    assert_no_exception(at)
    assert "Results on the test sets" in texts(at)
    assert "On the new hospital FedAvg reaches AUC" in texts(at)
    labels = {m.label for m in at.metric}
    assert "FedAvg (new hospital)" in labels
    # the display-only control redraws without retraining
    at.selectbox(key="federated.view").set_value("h1").run()
    assert_no_exception(at)
    assert at.session_state["future.federated.job"] is job
