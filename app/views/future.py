"""Future directions: domain shift, federated learning, uncertainty, self-supervised pretraining,
vision transformers and subgroup performance (fairness), each a live lab; then what deployment
takes."""

import streamlit as st

from app import ui
from app.widgets import (
    future_federated,
    future_selfsup,
    future_shift,
    future_subgroups,
    future_uncertainty,
    future_vit,
)

page = ui.ChapterPage("future")
page.lesson("intro")

# Each lab is one widget module (app/widgets/future_*.py, core in primer/future_*.py) that draws
# its own subheader, intro, presets, controls, results and (collapsed) lessons.
future_shift.lab(page)
future_federated.lab(page)
future_uncertainty.lab(page)
future_selfsup.lab(page)
future_vit.lab(page)
future_subgroups.lab(page)

if not ui.presenting():
    st.header(page.t("deployment_header"))
page.lesson("deployment", expanded=False)
page.quiz()
