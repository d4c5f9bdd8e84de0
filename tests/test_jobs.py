"""The training queue: bounded concurrency, shared identical runs, stopping, failures."""

import threading
import time

import pytest

import primer.jobs as jobs
from primer.train import TrainLab


class FakeRun:
    """Stands in for run_experiment: records how many runs overlap."""

    def __init__(self, seconds=0.15, fail=False):
        self.seconds, self.fail = seconds, fail
        self.active = self.peak = self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, lab, data, on_epoch=None, on_batch=None, should_stop=None):
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.01)
            if self.fail:
                raise RuntimeError("boom")

            class Result:
                class history:
                    stopped_by_user = should_stop()

            return Result()
        finally:
            with self.lock:
                self.active -= 1


def wait(job, timeout=10):
    deadline = time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.finished


@pytest.fixture
def fake(monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(jobs, "run_experiment", run)
    return run


def test_at_most_n_jobs_run_at_once_and_the_rest_wait_in_line(fake):
    queue = jobs.TrainingQueue(max_concurrent=1, threads_per_job=1)
    submitted = [queue.submit(TrainLab(seed=s)) for s in range(4)]
    time.sleep(0.05)
    assert [j.position() for j in submitted] == [0, 1, 2, 3]
    for job in submitted:
        wait(job)
    assert fake.peak == 1 and fake.calls == 4
    assert all(j.state == "done" for j in submitted)
    assert submitted[3].waited() > submitted[0].waited()


def test_identical_requests_share_one_job(fake):
    queue = jobs.TrainingQueue(max_concurrent=2, threads_per_job=1)
    a, b = queue.submit(TrainLab()), queue.submit(TrainLab())
    c = queue.submit(TrainLab(learning_rate=0.01))
    assert a is b and a is not c and a.viewers == 2
    wait(a), wait(c)
    assert queue.submit(TrainLab()) is a, "a finished run is served again instantly"
    assert fake.calls == 2
    own_1, own_2 = queue.submit(TrainLab(), data_key="own:s1:f"), queue.submit(TrainLab(), data_key="own:s2:f")
    assert own_1 is not own_2, "uploads of two sessions never share a result"


def test_a_shared_run_stops_only_when_its_last_viewer_leaves(monkeypatch):
    run = FakeRun(seconds=5)
    monkeypatch.setattr(jobs, "run_experiment", run)
    queue = jobs.TrainingQueue(max_concurrent=1, threads_per_job=1)
    a = queue.submit(TrainLab())
    queue.submit(TrainLab())
    time.sleep(0.05)
    a.release()
    time.sleep(0.1)
    assert a.state == "running"
    a.release()
    wait(a)
    assert a.state == "stopped"


def test_failed_run_is_reported_and_can_be_retried(monkeypatch):
    monkeypatch.setattr(jobs, "run_experiment", FakeRun(seconds=0, fail=True))
    queue = jobs.TrainingQueue(max_concurrent=1, threads_per_job=1)
    job = queue.submit(TrainLab())
    wait(job)
    assert job.state == "failed" and "boom" in job.error
    assert queue.submit(TrainLab()) is not job


def test_real_training_through_the_queue_reports_epochs():
    queue = jobs.TrainingQueue(max_concurrent=1, threads_per_job=2)
    job = queue.submit(TrainLab(num_images=400, num_epochs=2))
    wait(job, timeout=120)
    assert job.state == "done" and len(job.epochs) == 2 and job.progress == 1.0
    assert job.result.sizes == {
        "train": {"images": 280, "patients": 280, "positives": job.result.sizes["train"]["positives"]},
        "val": {"images": 60, "patients": 60, "positives": job.result.sizes["val"]["positives"]},
        "test": {"images": 60, "patients": 60, "positives": int(job.result.test_labels.sum())},
    }
    assert 0.0 <= job.result.test_auc <= 1.0
