"""Background training for the architectures chapter, through the process-wide training queue.

Every run of the chapter (the race and the degradation runs of the training engine, and the
detector, U-Net, autoencoder and VAE loops) goes through `primer.jobs.training_queue()`: one
line for the whole process, so a class pressing Train at once never oversubscribes the cores,
and identical requests share one job. This module only submits and watches.

    job = submit("dae:4:0", 12, lambda job: train(..., on_epoch=job.add_epoch))
    watch("dae", [job], draw)          # draws progress; reruns the page once when done
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from app import ui
from primer.jobs import Job, training_queue


def submit(key: str, total_epochs: int, work: Callable[[Job], Any]) -> Job:
    """Queue one of the chapter's own training loops (or join the identical one)."""
    return training_queue().submit_work(key, work, total_epochs)


def work_key(job: Job) -> str:
    """The key a work job was submitted under."""
    return job.key.removeprefix("work:")


def progress_line(t, job: Job) -> None:
    """One work job's progress bar while it runs (epoch, seconds so far), or its error."""
    if job.state == "running":
        epoch = min(len(job.epochs) + 1, job.total_epochs)
        text = t("job.running", epoch=epoch, total=job.total_epochs, seconds=job.elapsed())
        st.progress(job.progress, text=text)
    elif job.state == "failed":
        st.error(t("gen.failed", error=job.error))


def watch(key: str, jobs: list[Job], draw: Callable[[], None]) -> None:
    """Run `draw` in a fragment that polls every ui.POLL_SECONDS while any job runs, then reruns the
    whole page once so the finished results appear in the main script."""
    running = any(not job.finished for job in jobs)

    @st.fragment(run_every=ui.POLL_SECONDS if running else None)
    def panel():
        waiting = [job.position() for job in jobs if job.state == "queued"]
        if waiting and not any(job.state == "running" for job in jobs):
            # Behind someone else's run: the one queue keeps the cores from being oversubscribed.
            st.caption(ui.t("architectures.queue.waiting", position=min(waiting)))
        draw()
        signature = tuple((job.key, job.state) for job in jobs)
        if all(job.finished for job in jobs) and st.session_state.get(f"{key}.shown") != signature:
            st.session_state[f"{key}.shown"] = signature
            if running:
                st.rerun()

    panel()
