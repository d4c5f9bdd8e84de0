"""Training and validation: train a small CNN live and watch it learn, overfit, diverge or leak."""

import streamlit as st

from app import ui
from app.widgets import training_panel as panel
from app.widgets import training_validation as validation
from primer.train import TrainLab

page = ui.ChapterPage("training")
page.lesson("intro")


@st.fragment  # a control reruns the lab (its run and results), not the lessons and the quiz
def training_lab() -> None:
    lab = page.lab(TrainLab)
    lab.presets()
    controls, results = st.columns([1.25, 2], gap="large")
    with controls:
        panel.controls(page, lab)
    state = lab.state()
    with results:
        issue = panel.problem(state)
        if issue:
            st.error(page.t(issue))
        else:
            panel.run_panel(page, state)
        with st.expander(page.t("data_preview"), expanded=not ui.presenting(), icon=":material/image:"):
            panel.data_preview(page, state)
    panel.results(page)


training_lab()
state = page.lab(TrainLab).state()  # cross-validation runs the lab's current settings
if not ui.presenting():
    panel.own_data_panel(page)
    panel.cross_validation_panel(page, state)
    validation.external_validation_lab(page)
    validation.ensemble_lab(page)
    st.header(page.t("lessons"))
    for lesson_id in (
        "loss",
        "gradient_descent",
        "learning_rate",
        "schedules",
        "imbalance_loss",
        "batch_epoch",
        "fitting",
        "regularization",
        "augmentation",
        "transfer_learning",
        "splits",
        "cross_validation",
        "external_validation",
        "ensembles_tta",
    ):
        page.lesson(lesson_id, expanded=False)
page.quiz()
