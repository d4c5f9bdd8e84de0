"""Home: what this app is, who it is for, and the learning path through the paper's chapters."""

import streamlit as st

from app import ui
from primer import content, quiz

st.title(ui.t("home.title"))
st.markdown(ui.t("home.intro"))
st.caption(ui.t("home.citation"))

cols = st.columns(3)
for col, who in zip(cols, ("learner", "instructor", "resident"), strict=True):
    with col.container(border=True):
        st.markdown(f"**{ui.t(f'home.who.{who}.title')}**")
        st.markdown(ui.t(f"home.who.{who}.text"))

st.header(ui.t("home.path"))
chapters = content.chapters()
if not chapters:
    st.info(ui.t("home.no_chapters"))
progress = ui.progress()
for number, chapter in enumerate(chapters, start=1):
    with st.container(border=True):
        head, side = st.columns([4, 1], vertical_alignment="center")
        head.subheader(f"{number}. {chapter.text('title', ui.lang())}")
        head.markdown(chapter.text("summary", ui.lang()))
        for lab in chapter.labs:
            head.markdown(f"- **{ui.bi(lab.title)}**: {ui.bi(lab.what)}")
        side.metric(ui.t("home.minutes"), ui.t("home.minutes_value", minutes=chapter.minutes))
        lesson_ids = [lesson.id for lesson in content.lessons(chapter.id, ui.lang())]
        read, total = progress.lessons_done(chapter.id, lesson_ids), len(lesson_ids)
        right, answered = progress.quiz_score(chapter.id, [q.id for q in quiz.load_quiz(chapter.id)])
        side.caption(ui.t("home.chapter_progress", read=read, total=total, right=right, answered=answered))
        side.page_link(chapter.page, label=ui.t("home.open"), icon=":material/arrow_forward:")

st.divider()
st.caption(ui.t("home.offline"))
