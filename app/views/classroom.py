"""Live class: students join with a code; the instructor polls the room, pushes a lab setup to
every screen, and sees the class overview. Logic: primer.classroom; widgets: app.widgets.classroom."""

import streamlit as st

from app import ui
from app.widgets import classroom

st.title(ui.t("class.page_title"))
st.markdown(ui.t("class.intro"))
student, instructor = st.tabs([ui.t("class.tab_student"), ui.t("class.tab_instructor")])
with student:
    classroom.join_form()
with instructor:
    classroom.teach_form()
