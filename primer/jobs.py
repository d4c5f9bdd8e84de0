"""A process-wide training queue: never more jobs than the cores can run, identical runs shared.

When a class presses Train at once, the jobs wait in line instead of fighting over two cores
(which would make every one of them slow), each running job gets a fixed thread count, and a
request identical to one already queued, running or finished (same settings, same seed, same
data) gets that job instead of a new one: the second student sees the first one's curves.

    queue = training_queue()
    job = queue.submit(lab)            # Job: state, live epochs, progress, position, result
    job.position()                     # 0 running, k = k-th in line
    job.release()                      # this viewer no longer wants it (Stop)

Work that is not a training-lab run (a chapter's own training loop: a detector, a U-Net, an
autoencoder) goes through the same line, so it never runs beside another job on the same cores:

    job = queue.submit_work("dae:4:0", work=lambda job: train(..., on_epoch=job.add_epoch,
                            should_stop=job.should_stop), total_epochs=12)
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from primer.train import EpochRecord, RunResult, TensorData, TrainLab, cross_validate, run_experiment


def lab_key(lab: TrainLab, data_key: str = "phantom", kind: str = "train") -> str:
    """Identity of a run: what it computes, every setting, the seed and the data."""
    payload = json.dumps({"lab": asdict(lab), "data": data_key, "kind": kind}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Job:
    key: str
    lab: TrainLab | None = None  # None for "work" jobs
    kind: str = "train"  # train: one run (RunResult); cv: k-fold cross-validation (dict); work: any callable
    state: str = "queued"  # queued → running → done | stopped | failed
    epochs: list[EpochRecord] = field(default_factory=list)
    progress: float = 0.0  # fraction of all training steps done
    result: RunResult | dict | None = None
    error: str | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    viewers: int = 1
    total_epochs: int = 0  # work jobs: how many epochs the callable will report
    latest: Any = None  # work jobs: the newest intermediate picture (e.g. generated samples)
    _work: Callable[[Job], Any] | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _queue: TrainingQueue | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped", "failed")

    def position(self) -> int:
        """0 while running or finished; k when k-1 jobs wait ahead of this one."""
        return self._queue.position(self) if self._queue else 0

    def waited(self) -> float:
        """Seconds spent in the queue before starting."""
        end = self.started_at if self.started_at is not None else time.monotonic()
        return end - self.submitted_at

    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started_at

    def add_epoch(self, record: Any, latest: Any = None) -> None:
        """For work callables: report one finished epoch (and optionally a picture of it)."""
        self.epochs = [*self.epochs, record]  # a new list: readers never see it half-built
        if latest is not None:
            self.latest = latest
        self.progress = min(1.0, len(self.epochs) / max(1, self.total_epochs))

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def release(self) -> None:
        """One viewer stops watching; the run stops when nobody watches any more."""
        with self._queue._lock if self._queue else threading.Lock():
            self.viewers = max(0, self.viewers - 1)
            if self.viewers == 0 and not self.finished:
                self._stop.set()


class TrainingQueue:
    def __init__(self, max_concurrent: int | None = None, threads_per_job: int | None = None, max_kept: int = 48):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # Two threads per job is where these small convolutions stop scaling; more jobs than
        # cores / 2 would only slow every job down. A deployment may set both (README).
        max_concurrent = max_concurrent or int(os.environ.get("PRIMER_TRAINING_JOBS", 0))
        threads_per_job = threads_per_job or int(os.environ.get("PRIMER_JOB_THREADS", 0))
        self.max_concurrent = max_concurrent or max(1, cores // 2)
        self.threads_per_job = threads_per_job or max(1, cores // self.max_concurrent)
        self.max_kept = max_kept
        self._pool = ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="train")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: list[Job] = []
        self._lock = threading.Lock()

    def submit(
        self, lab: TrainLab, data: TensorData | None = None, data_key: str = "phantom", kind: str = "train"
    ) -> Job:
        """Queue a run (kind "train") or a k-fold cross-validation ("cv"), or join the identical
        one. Uploaded data must pass a per-session `data_key`, so no two sessions ever share a
        result built from someone's upload."""
        return self._enqueue(Job(key=lab_key(lab, data_key, kind), lab=lab, kind=kind, _queue=self), data)

    def submit_work(self, key: str, work: Callable[[Job], Any], total_epochs: int = 1) -> Job:
        """Queue `work(job)` (its return value becomes `job.result`), or join the job already
        filed under `key`. The key must name everything the result depends on (settings and
        seed): two viewers with the same key share one run. `work` reports through
        `job.add_epoch` and should return early when `job.should_stop()`."""
        job = Job(key=f"work:{key}", kind="work", total_epochs=total_epochs, _work=work, _queue=self)
        return self._enqueue(job, None)

    def _enqueue(self, new: Job, data: TensorData | None) -> Job:
        with self._lock:
            job = self._jobs.get(new.key)
            if job is not None and job.state not in ("failed", "stopped"):
                job.viewers += 1
                self._jobs.move_to_end(new.key)
                return job
            self._jobs[new.key] = new
            self._waiting.append(new)
            self._evict()
        self._pool.submit(self._run, new, data)
        return new

    def position(self, job: Job) -> int:
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    def queued(self) -> int:
        with self._lock:
            return len(self._waiting)

    def running(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.state == "running")

    def _evict(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished]
        while len(self._jobs) > self.max_kept and finished:
            self._jobs.pop(finished.pop(0))

    def _run(self, job: Job, data: TensorData | None) -> None:
        import torch

        with self._lock:
            self._waiting.remove(job)
            if job._stop.is_set():
                job.state, job.finished_at = "stopped", time.monotonic()
                return
            job.state, job.started_at = "running", time.monotonic()
        torch.set_num_threads(self.threads_per_job)
        total_epochs = max(1, job.lab.num_epochs) if job.lab is not None else 1

        def on_batch(epoch: int, batch: int, num_batches: int) -> None:
            job.progress = ((epoch - 1) + batch / num_batches) / total_epochs

        def on_epoch(record: EpochRecord, _history) -> None:
            job.epochs = [*job.epochs, record]  # a new list: readers never see it half-built

        def on_fold(fold: int, k: int) -> None:
            job.progress = fold / k

        try:
            if job.kind == "work":
                job.result = job._work(job)
                job.state = "stopped" if job._stop.is_set() else "done"
            elif job.kind == "cv":
                job.result = cross_validate(job.lab, data, on_fold=on_fold, should_stop=job._stop.is_set)
                job.state = "stopped" if job.result["stopped"] else "done"
            else:
                job.result = run_experiment(
                    job.lab, data, on_epoch=on_epoch, on_batch=on_batch, should_stop=job._stop.is_set
                )
                job.state = "stopped" if job.result.history.stopped_by_user else "done"
        except Exception as exc:  # a failed run is reported on the page, never crashes the server
            job.error = f"{type(exc).__name__}: {exc}"
            job.state = "failed"
            traceback.print_exc()
        finally:
            job.progress = 1.0 if job.state == "done" else job.progress
            job.finished_at = time.monotonic()


_QUEUE: TrainingQueue | None = None
_QUEUE_LOCK = threading.Lock()


def training_queue() -> TrainingQueue:
    """The process-wide queue, created on first use."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = TrainingQueue()
        return _QUEUE
