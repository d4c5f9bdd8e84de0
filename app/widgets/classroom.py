"""Live class mode on the page: what a student sees on every page (the open poll, the lab the
instructor pushed) and the instructor's console. Core: primer.classroom (no streamlit)."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qsl, urlsplit

import plotly.graph_objects as go
import streamlit as st

from app import ui
from primer import classroom, content
from primer import quiz as quiz_core
from primer.storage import StorageError

MEMBER, TEACH = "class.member", "class.teach"  # session only: a member id and (id, key) are credentials
LIVE_SECONDS = 2.0  # how often a student's page asks for news: a rerun of ~6 ms script CPU (bench.classroom)
# the instructor's chart: one session, so a faster timer costs nothing and the chart is complete
# within 2 s of the last answer (with a 2 s timer it took 2.1-2.4 s)
CHART_SECONDS = 1.0
JOIN_TRIES = 10  # class codes a session may try in a minute: a mistyped code or two, not a search of 31⁶


def room() -> classroom.Classroom | None:
    store = ui._store()
    return None if store is None else classroom.Classroom(store)


def error_text(exc: Exception) -> str:
    code = exc.code if isinstance(exc, classroom.ClassError | StorageError) else "unavailable"
    key = f"class.error.{code}"
    return ui.t(key) if key in _known_errors() else ui.t("class.error.unavailable")


def _known_errors() -> set[str]:
    from primer import i18n

    return {k for k in i18n.catalog() if k.startswith("class.error.")}


def poll_questions() -> list[quiz_core.Question]:
    """Every single-answer, multiple-answer and numeric quiz question of every chapter (a figure
    question draws a new figure for each student, so the room would not answer the same one)."""
    return [
        q
        for c in content.chapters()
        for q in quiz_core.load_quiz(c.id)
        if q.kind != "figure" and q.graded_as in classroom.POLL_KINDS
    ]


def answer_text(question: quiz_core.Question, response) -> str:
    """A response as the student and the reveal show it."""
    options = [ui.bi(o) for o in question.options]
    if question.graded_as == "single":
        return options[int(response)]
    if question.graded_as == "multiple":
        return ("；" if ui.lang() == "zh" else "; ").join(options[i] for i in response)
    return f"{float(response):g}"


def question_by_key(chapter: str, question_id: str) -> quiz_core.Question | None:
    return next((q for q in quiz_core.load_quiz(chapter) if q.id == question_id), None)


def page_for(path_and_query: str) -> tuple[str, dict] | None:
    """A pushed "/training?x=1" → (the page file, its query parameters), for st.switch_page."""
    parts = urlsplit(path_and_query)
    slug = parts.path.strip("/") or "home"
    pages = {c.id: c.page for c in content.chapters()} | {"home": "views/home.py", "progress": "views/progress.py"}
    if slug not in pages:
        return None
    return pages[slug], dict(parse_qsl(parts.query))


def lab_path(link: str) -> str | None:
    """What an instructor pastes (a shared link of this app, or just its path) → "/page?query"."""
    parts = urlsplit(str(link).strip())
    if not parts.path.startswith("/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


# ---------------------------------------------------------------------------------------------
# Students: on every page


def student_panel() -> None:
    """The open poll and "follow me", polled every LIVE_SECONDS while the student is in a class."""
    member = st.session_state.get(MEMBER)
    if member is None:
        return

    @st.fragment(run_every=LIVE_SECONDS)
    def live():
        r = room()
        if r is None:
            return
        try:
            poll = r.current_poll(member["id"])
            follow = r.following(member["id"])
        except (classroom.ClassError, StorageError) as exc:
            st.caption(error_text(exc))
            return
        st.caption(ui.t("class.in_class", nickname=member["nickname"] or "—"))
        if follow is not None and follow[1] > member.get("followed_at", 0.0):
            member["followed_at"] = follow[1]
            target = page_for(follow[0])
            if target is not None:
                st.switch_page(target[0], query_params=target[1])
        if poll is not None:
            show_poll(r, member, poll)

    with st.sidebar:
        live()


def show_poll(r: classroom.Classroom, member: dict, poll: classroom.OpenPoll) -> None:
    question = question_by_key(poll.chapter, poll.question)
    if question is None:
        return
    with st.container(border=True):
        st.markdown(f"**{ui.t('class.poll')}** {ui.bi(question.prompt)}")
        options = [ui.bi(o) for o in question.options]
        answered = member.setdefault("answered", {})
        key, kind = f"class.poll.{poll.poll_id}", question.graded_as
        if kind == "single":
            choice = st.radio(ui.t("quiz.your_answer"), range(len(options)), format_func=options.__getitem__,
                              index=None, key=key)  # fmt: skip
        elif kind == "multiple":
            choice = st.pills(ui.t("quiz.choose_all"), range(len(options)), format_func=options.__getitem__,
                              selection_mode="multi", key=key) or None  # fmt: skip
        else:
            choice = st.number_input(ui.t("quiz.your_answer"), value=None, format="%g", key=key)
        if st.button(ui.t("class.send"), key=f"class.send.{poll.poll_id}") and choice is not None:
            try:
                text = classroom.encode_answer(kind, choice)
                r.answer(member["id"], poll.poll_id, text, quiz_core.grade(question, choice))
                answered[poll.poll_id] = choice
            except (classroom.ClassError, StorageError) as exc:
                st.error(error_text(exc))
        if poll.poll_id in answered:
            st.caption(ui.t("class.sent", answer=answer_text(question, answered[poll.poll_id])))
        if poll.revealed:
            st.success(ui.t("class.right_answer", answer=answer_text(question, question.answer)))
            st.info(ui.bi(question.explanation))


# ---------------------------------------------------------------------------------------------
# The page: join, or teach


def join_form() -> None:
    member = st.session_state.get(MEMBER)
    if member is not None:
        st.success(ui.t("class.joined", nickname=member["nickname"] or "—"))
        if st.button(ui.t("class.leave"), key="class.leave"):
            st.session_state.pop(MEMBER, None)
            st.rerun()
        return
    with st.form("class.join", border=True):
        code = st.text_input(ui.t("class.join_code"), max_chars=20, placeholder="K7QM2X", key="class.join_code_input")
        nickname = st.text_input(ui.t("class.nickname"), max_chars=classroom.MAX_NICKNAME, key="class.nickname_input")
        if st.form_submit_button(ui.t("class.join"), icon=":material/group_add:", key="class.join_submit"):
            r = room()
            try:
                if not ui.allow_try("class.join_tries", JOIN_TRIES):
                    raise classroom.ClassError("too_many_joins")
                if r is None:
                    raise StorageError("unavailable")
                ui.progress()
                learner = ui.learner_code()
                member_id = r.join(code, nickname, learner=learner)
            except (classroom.ClassError, StorageError) as exc:
                st.error(error_text(exc))
            else:
                st.session_state[MEMBER] = {"id": member_id, "nickname": classroom.clean_nickname(nickname)}
                st.rerun()


def teach_form() -> None:
    teach = st.session_state.get(TEACH)
    r = room()
    if r is None:
        st.error(ui.t("class.error.unavailable"))
        return
    if teach is None:
        new, existing = st.columns(2)
        with new, st.form("class.create", border=True):
            title = st.text_input(ui.t("class.title"), max_chars=120, key="class.title_input")
            if st.form_submit_button(ui.t("class.create"), icon=":material/add:", key="class.create_submit"):
                try:
                    made = r.create_class(title)
                except StorageError as exc:
                    st.error(error_text(exc))
                else:
                    st.session_state[TEACH] = {"id": made.class_id, "key": made.instructor_key, "join": made.join_code}
                    st.rerun()
        with existing, st.form("class.open", border=True):
            join = st.text_input(ui.t("class.join_code"), max_chars=20)
            key = st.text_input(ui.t("class.key"), type="password", max_chars=200)
            if st.form_submit_button(ui.t("class.open"), icon=":material/key:"):
                try:
                    if not ui.allow_try("class.join_tries", JOIN_TRIES):
                        raise classroom.ClassError("too_many_joins")
                    class_id = r.class_for(join)
                    r.check_key(class_id, key)
                except (classroom.ClassError, StorageError) as exc:
                    st.error(error_text(exc))
                else:
                    st.session_state[TEACH] = {"id": class_id, "key": key, "join": classroom.normalise_join_code(join)}
                    st.rerun()
        return
    console(r, teach)


def console(r: classroom.Classroom, teach: dict) -> None:
    class_id, key = teach["id"], teach["key"]
    head, secret = st.columns([1, 1])
    head.metric(ui.t("class.join_code"), teach["join"])
    with secret:
        st.caption(ui.t("class.key_help"))
        st.code(key, language=None)

    st.subheader(ui.t("class.poll_title"))
    questions = poll_questions()
    labels = {
        q.key: f"{content.chapter(q.chapter).text('title', ui.lang())} · {ui.bi(q.prompt)[:90]}" for q in questions
    }
    picked = st.selectbox(ui.t("class.pick_question"), list(labels), format_func=labels.get, key="class.pick")
    if st.button(ui.t("class.start_poll"), type="primary", icon=":material/campaign:", key="class.start"):
        question = next(q for q in questions if q.key == picked)
        try:
            teach["poll"] = r.open_poll(class_id, key, question.chapter, question.id)
            teach["poll_question"] = (question.chapter, question.id)
        except (classroom.ClassError, StorageError) as exc:
            st.error(error_text(exc))
    if teach.get("poll"):
        poll_chart(r, teach)

    st.subheader(ui.t("class.follow_title"))
    st.caption(ui.t("class.follow_help"))
    link = st.text_input(ui.t("class.follow_link"), key="class.follow_link", max_chars=classroom.MAX_URL)
    if st.button(ui.t("class.push"), icon=":material/cast:", key="class.push") and link:
        path = lab_path(link)
        try:
            if path is None or page_for(path) is None:
                raise classroom.ClassError("bad_url")
            r.push(class_id, key, path)
            st.success(ui.t("class.pushed"))
        except (classroom.ClassError, StorageError) as exc:
            st.error(error_text(exc))

    st.subheader(ui.t("class.overview_title"))
    overview(r, teach)

    st.divider()
    if st.button(ui.t("class.delete"), icon=":material/delete_forever:", key="class.delete"):
        try:
            r.delete_class(class_id, key)
        except (classroom.ClassError, StorageError) as exc:
            st.error(error_text(exc))
        else:
            st.session_state.pop(TEACH, None)
            st.rerun()


def poll_chart(r: classroom.Classroom, teach: dict) -> None:
    chapter, question_id = teach["poll_question"]
    question = question_by_key(chapter, question_id)
    options = [ui.bi(o) for o in question.options]

    @st.fragment(run_every=CHART_SECONDS)
    def live():
        try:
            counts = r.poll_counts(teach["id"], teach["key"], teach["poll"])
        except (classroom.ClassError, StorageError) as exc:
            st.error(error_text(exc))
            return
        summary = classroom.summarize(question, counts)
        st.caption(ui.t("class.answers", n=summary.n))
        if question.graded_as == "numeric":  # the spread of the numbers the room gave
            fig = go.Figure(go.Histogram(x=list(summary.values), nbinsx=20, marker_color="#4c9be8"))
            fig.update_layout(height=240, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=ui.t("class.value"),
                              yaxis_title=ui.t("class.students_axis"), bargap=0.05)  # fmt: skip
        else:
            if question.graded_as == "multiple":
                st.caption(ui.t("class.multiple_counts"))
            fig = go.Figure(go.Bar(x=list(summary.option_counts), y=[o[:60] for o in options], orientation="h",
                                   marker_color="#4c9be8"))  # fmt: skip
            fig.update_layout(
                height=60 + 45 * len(options), margin=dict(l=10, r=10, t=10, b=10), yaxis_autorange="reversed"
            )
            # whole students on the axis: 0, 1, 2 ... (not 0.2, 0.4 while one has answered)
            fig.update_xaxes(dtick=max(1, -(-max(summary.option_counts, default=1) // 5)), rangemode="tozero")
        st.plotly_chart(fig, key="class.chart", config={"displaylogo": False})
        if summary.n:
            st.caption(ui.t("class.right_so_far", right=summary.right, n=summary.n))

    st.markdown(f"**{ui.bi(question.prompt)}**")
    live()
    if st.button(ui.t("class.reveal"), icon=":material/visibility:", key="class.reveal"):
        try:
            r.reveal(teach["id"], teach["key"], teach["poll"])
            st.success(ui.t("class.right_answer", answer=answer_text(question, question.answer)))
            st.info(ui.bi(question.explanation))
        except (classroom.ClassError, StorageError) as exc:
            st.error(error_text(exc))


def overview(r: classroom.Classroom, teach: dict) -> None:
    try:
        view = r.overview(teach["id"], teach["key"])
    except (classroom.ClassError, StorageError) as exc:
        st.error(error_text(exc))
        return
    st.caption(ui.t("class.students", n=view["students"]))
    rows = []
    for chapter in content.chapters():
        lessons = content.lessons(chapter.id, ui.lang())
        read = view["lessons"].get(chapter.id, {})
        scores = view["scores"].get(chapter.id, [])
        rows.append(
            {
                ui.t("progress.chapter"): chapter.text("title", ui.lang()),
                ui.t("class.lessons_read"): ", ".join(f"{lesson.id}: {read.get(lesson.id, 0)}" for lesson in lessons),
                ui.t("class.scores"): ", ".join(f"{right}/{n}" for right, n in sorted(scores)) or "—",
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["chapter", "lesson", "students_read"])
    for chapter, lessons in sorted(view["lessons"].items()):
        for lesson, n in sorted(lessons.items()):
            writer.writerow([chapter, lesson, n])
    writer.writerow([])
    writer.writerow(["chapter", "right", "answered"])
    for chapter, scores in sorted(view["scores"].items()):
        for right, n in sorted(scores):
            writer.writerow([chapter, right, n])
    st.download_button(ui.t("class.csv"), buffer.getvalue(), file_name="class-overview.csv", mime="text/csv")
