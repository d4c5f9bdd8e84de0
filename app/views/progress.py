"""Progress: lessons read and quiz scores per chapter, saved to and loaded from a JSON file,
and a final self-assessment drawn from every chapter."""

import streamlit as st

from app import ui
from primer import content, quiz
from primer.progress import Progress, ProgressError

st.title(ui.t("progress.title"))
progress = ui.progress()
chapters = content.chapters()

rows = []
for chapter in chapters:
    questions = quiz.load_quiz(chapter.id)
    lesson_ids = [lesson.id for lesson in content.lessons(chapter.id, ui.lang())]
    # only ids this app knows count: a loaded file may name lessons and questions that do not exist
    right, answered = progress.quiz_score(chapter.id, [q.id for q in questions])
    rows.append(
        {
            ui.t("progress.chapter"): chapter.text("title", ui.lang()),
            ui.t("progress.lessons"): f"{progress.lessons_done(chapter.id, lesson_ids)} / {len(lesson_ids)}",
            ui.t("progress.quiz"): f"{right} / {len(questions)}"
            + (f"  ({answered} {ui.t('progress.answered')})" if answered else ""),
        }
    )
if rows:
    st.dataframe(rows, hide_index=True, width="stretch")
else:
    st.info(ui.t("home.no_chapters"))

st.subheader(ui.t("learner.title"))
code = ui.learner_code()
if ui.signed_in():
    st.markdown(ui.t("learner.signed_in_help"))
elif code:
    st.markdown(ui.t("learner.your_code"))
    st.code(code, language=None)  # shown as text; the code itself is what restores the progress
    st.caption(ui.t("learner.your_code_help"))
else:
    st.caption(ui.t("learner.no_code_yet"))
if ui.storage_status() not in ("saved", "idle"):
    st.warning(ui.t("learner.not_saved"), icon=":material/cloud_off:")
other, forget = st.columns(2)
with other, st.form("learner_code_form", border=False):
    typed = st.text_input(ui.t("learner.enter"), max_chars=80, placeholder="amber-heron-delta-4821")
    if st.form_submit_button(ui.t("learner.continue"), icon=":material/login:"):
        outcome = ui.use_learner_code(typed)
        if outcome == "ok":
            st.rerun()
        st.error(ui.t(f"learner.error.{outcome}"))
with forget:
    if code:
        st.caption(ui.t("learner.forget_help"))
        if st.button(ui.t("learner.forget"), icon=":material/delete:", key="learner_forget"):
            outcome = ui.forget_me()
            if outcome == "ok":
                st.rerun()
            st.error(ui.t(f"learner.error.{outcome}"))

save, load = st.columns(2)
with save:
    st.subheader(ui.t("progress.save"))
    st.caption(ui.t("progress.save_help"))
    st.download_button(
        ui.t("progress.download"),
        progress.to_json(),
        file_name="dl-primer-progress.json",
        mime="application/json",
        icon=":material/download:",
    )
with load:
    st.subheader(ui.t("progress.load"))
    # A real progress file is a few kilobytes; 1 MB keeps a hostile one out before it reaches us.
    upload = st.file_uploader(ui.t("progress.upload"), type=["json"], key="progress_upload", max_upload_size=1)
    if upload is not None and st.session_state.get("progress_loaded") == upload.file_id:
        st.success(ui.t("progress.loaded"))  # after the rerun below, so the table above is the file's
    elif upload is not None:
        try:
            st.session_state["progress"] = Progress.from_json(upload.getvalue())
        except ProgressError as exc:
            st.error(ui.error_message("progress", exc.code))
        else:
            ui.remember(("all", st.session_state["progress"].to_json()))  # the file replaces the stored progress
            st.session_state["progress_loaded"] = upload.file_id
            st.session_state["progress_generation"] = st.session_state.get("progress_generation", 0) + 1
            st.rerun()

st.header(ui.t("progress.self_assessment"))
st.caption(ui.t("progress.self_assessment_help"))
seed = st.number_input(
    ui.t("progress.seed"), min_value=0, max_value=9999, value=0, step=1, key="assessment_seed", persist_state="session"
)
questions = quiz.self_assessment([c.id for c in chapters], per_chapter=2, seed=int(seed))
if not questions:
    st.info(ui.t("progress.no_questions"))
for number, question in enumerate(questions, start=1):
    ui.quiz_question(question, number, scope=f"assess{int(seed)}")
