"""Recompute one stored point of a precomputed curve live, through the training queue.

Curves that take minutes of training are computed once by a script and stored; a learner can
still check any point: the button builds the same setup, submits it to primer.jobs' queue
(identical requests from other users share one run), polls it in a fragment, and shows the fresh
numbers beside the stored ones.

    live_point.button(page, key="curve", make_setup=lambda: term.curve_setup(500, 0),
                      stored=point, fields={"test_auc": "Test AUC"})
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app import ui

STATE = "live_point.{key}"


def _submit(page, key: str, make_setup: Callable) -> None:
    from primer.jobs import training_queue

    with st.spinner(page.t("live.preparing")):
        setup = make_setup()
    job = training_queue().submit(setup.lab, data=setup.data, data_key=setup.data_key)
    # The queue holds the data until the run ends; the session keeps only what scoring needs.
    setup.data, setup.parts = None, None
    st.session_state[STATE.format(key=key)] = (job, setup)


def button(page, *, key: str, make_setup: Callable, stored: dict | None, fields: dict[str, str], params: dict) -> None:
    """A "recompute live" button and, once pressed, the run's progress and result for `params`.

    `fields` maps stored numbers to their translated labels; `params` identifies the point, so a
    result for other settings is not shown as if it were this one's."""
    state_key = STATE.format(key=key)
    current = st.session_state.get(state_key)
    running = current is not None and not current[0].finished
    st.button(
        page.t("live.button"),
        key=f"live.{key}",
        icon=":material/replay:",
        help=page.t("live.button.help"),
        disabled=running,
        on_click=_submit,
        args=(page, key, make_setup),
    )
    if current is None:
        return
    job, setup = current
    if setup.params != params:
        return

    @st.fragment(run_every=ui.POLL_SECONDS if not job.finished else None)
    def progress():
        if not job.finished:
            text = (
                page.t("live.queued", position=job.position())
                if job.state == "queued"
                else page.t("live.running", seconds=f"{job.elapsed():.0f}")
            )
            st.progress(min(1.0, job.progress), text=text)
            return
        if st.session_state.get(f"{state_key}.shown") != job.key:
            st.session_state[f"{state_key}.shown"] = job.key
            st.rerun()  # once, to stop polling
        if job.state != "done":
            st.warning(page.t("live.failed", error=job.error or job.state))
            return
        from primer.terminology import summarize

        fresh = summarize(setup, job.result)
        rows = [
            {
                page.t("live.number"): label,
                page.t("live.stored"): _fmt(stored.get(name) if stored else None),
                page.t("live.now"): _fmt(fresh.get(name)),
            }
            for name, label in fields.items()
        ]
        st.dataframe(rows, hide_index=True)
        st.caption(page.t("live.caption", seconds=f"{job.elapsed():.0f}"))

    progress()


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"
