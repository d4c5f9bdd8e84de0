"""Future directions: domain shift, federated learning, uncertainty, self-supervised pretraining,
vision transformers and subgroup performance, each a live lab; then what deployment takes."""

import streamlit as st

from app import ui

page = ui.ChapterPage("future")
page.lesson("intro")

# Each lab is one widget module (app/widgets/future_*.py) with its core in primer/; a lab draws
# its own subheader, lessons (collapsed) and controls.

if not ui.presenting():
    st.header(page.t("deployment_header"))
page.lesson("deployment", expanded=False)
page.quiz()
