"""Entry point: page config, sidebar, and routing over the chapter registry. Nothing else."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import ui  # noqa: E402
from app.widgets import classroom  # noqa: E402
from primer import content  # noqa: E402

st.set_page_config(page_title="Deep Learning for Radiologists", page_icon="🩻", layout="wide")
ui.sidebar()

lang = ui.lang()
home = st.Page("views/home.py", title=ui.t("nav.home"), icon=":material/home:", url_path="home", default=True)
chapter_pages = [st.Page(c.page, title=c.text("title", lang), icon=c.icon, url_path=c.id) for c in content.chapters()]
more = []
if content.glossary():
    more.append(
        st.Page("views/glossary.py", title=ui.t("nav.glossary"), icon=":material/menu_book:", url_path="glossary")
    )
more.append(st.Page("views/classroom.py", title=ui.t("nav.classroom"), icon=":material/groups:", url_path="class"))
more.append(st.Page("views/progress.py", title=ui.t("nav.progress"), icon=":material/school:", url_path="progress"))

sections = {"": [home], ui.t("nav.chapters"): chapter_pages, ui.t("nav.more"): more}
navigation = st.navigation({name: pages for name, pages in sections.items() if pages})
classroom.student_panel()  # a student in a live class: the open poll and "follow me", on every page
navigation.run()
