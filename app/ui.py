"""Shared UI: translation, lab state in the URL, presets, lessons, quizzes, presentation mode.

Pages are plain scripts that call these pieces; no chapter builds its own version of them.

    page = ui.ChapterPage("training")           # title, summary, bookkeeping
    page.lesson("loss")                         # one lesson section (hidden when presenting)
    lab = page.lab(TrainLab)                    # widgets bound to the URL, one per field
    lab.presets()                               # one-click presets with commentary
    lr = lab.select_slider("learning_rate", "lr", options=[...], keep=True)
    state = lab.state()                         # the lab's dataclass, ready for the core
    page.quiz()

Every lab widget has key "<lab id>.<field>", is bound to the query string and persists for the
session, so a copied URL reopens the same setup and values survive page switches.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from urllib.parse import urlencode, urlsplit

import streamlit as st

from primer import content, i18n, labstate, storage
from primer import quiz as quiz_core
from primer.progress import Progress
from primer.text import markdown_literal as literal  # noqa: F401 - pages write ui.literal(...)

URL_STATE = dict(bind="query-params", persist_state="session")  # the sidebar's switches


def url_text(value) -> str:
    """How a control's value is written in the address (true/false like Streamlit's binding)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------------------------------
# Language and modes


def lang() -> str:
    value = st.session_state.get("lang")
    return value if value in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


def t(key: str, **values) -> str:
    """The current language's text for a UI string key."""
    return i18n.translate(key, lang(), **values)


def bi(value) -> str:
    """Pick the current language from a {en, zh} mapping."""
    return i18n.bilingual(value, lang())


def instructor() -> bool:
    return bool(st.session_state.get("instructor"))


def presenting() -> bool:
    return instructor() and bool(st.session_state.get("present"))


def progress() -> Progress:
    """This session's progress: restored from the database when the address carries a learner code."""
    if "progress" not in st.session_state:
        st.session_state["progress"] = Progress()
        identity = signed_in_identity()
        if identity is not None:  # an institution's login: the account decides the code
            st.session_state[ACCOUNT] = identity
            link_account()
            return st.session_state["progress"]
        # the address first (a bookmark, a code typed elsewhere), then this browser's cookie
        code = storage.normalise_code(st.query_params.get(LEARNER, "")) or storage.normalise_code(
            st.context.cookies.get(COOKIE, "")
        )
        if code:
            st.session_state[LEARNER] = code
            st.session_state[RESTORE] = True  # sync() loads it (now, or when the database is back)
            sync()
    return st.session_state["progress"]


# ---------------------------------------------------------------------------------------------
# Progress that survives the tab: an anonymous learner code and the database (primer.storage)

LEARNER, PENDING, RESTORE, STATUS = "learner", "progress.pending", "progress.restore", "progress.status"
ACCOUNT, LINKED = "learner.account", "learner.account_linked"
COOKIE = "primer_learner"  # the browser keeps the code here too, where it allows cookies
COOKIE_DAYS = 180  # as long as PRIMER_RETENTION_DAYS' default: a code older than that is gone anyway


@st.cache_resource  # one engine (and connection pool) per process, shared by every session
def _store() -> storage.Store | None:
    try:
        store = storage.Store()
    except Exception:  # a malformed PRIMER_DATABASE_URL: the app runs, progress is not saved
        return None
    apply_retention(store)
    return store


def apply_retention(store: storage.Store) -> None:
    """Delete learners not seen, and classes created, more than PRIMER_RETENTION_DAYS ago
    (default 180), once per process start. A database that is down is tried at the next start."""
    from primer.classroom import Classroom

    days = float(os.environ.get("PRIMER_RETENTION_DAYS", "180") or 180)
    try:
        store.delete_idle(days * 86400)
        Classroom(store).delete_old(days * 86400)
    except storage.StorageError:
        pass


def login_configured() -> bool:
    """Streamlit's own OpenID Connect login is set up: an [auth] section in .streamlit/secrets.toml."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: the anonymous code only
        return False


def signed_in_identity() -> str | None:
    """The signed-in person as storage.account_identity (a hash of the provider and subject id)."""
    if not login_configured() or not st.user.is_logged_in:
        return None
    subject = st.user.get("sub")
    return storage.account_identity(str(st.user.get("iss") or ""), str(subject)) if subject else None


def signed_in() -> bool:
    return st.session_state.get(ACCOUNT) is not None


def link_account() -> None:
    """Load the signed-in person's progress (made on the first login). With the database down,
    the session goes on unsaved and the sidebar tries again on the next interaction."""
    store = _store()
    if store is None:
        st.session_state[STATUS] = "unavailable"
        return
    try:
        code = store.account_learner(st.session_state[ACCOUNT])
    except storage.StorageError as exc:
        st.session_state[STATUS] = exc.code
        return
    st.session_state.update({LEARNER: code, RESTORE: True, LINKED: True})
    sync()


def learner_code() -> str | None:
    return st.session_state.get(LEARNER)


def storage_status() -> str:
    """ "saved", "idle" (nothing to save yet), "unknown_code", or a StorageError code (not saved)."""
    return st.session_state.get(STATUS, "idle")


def remember(op: tuple) -> None:
    """Queue one change of this session's progress for the database and try to write it now.
    While the database is down the queue grows; the next successful sync writes it in order."""
    st.session_state.setdefault(PENDING, []).append(op)
    sync()


def sync() -> None:
    """Write what is pending (creating the learner code on the first change), and finish a
    restore that could not run earlier. Never raises: a failure is kept in storage_status()."""
    store = _store()
    pending = st.session_state.get(PENDING, [])
    if store is None:
        st.session_state[STATUS] = "unavailable"
        return
    if signed_in() and not st.session_state.get(LINKED):
        link_account()  # the account's code first (link_account syncs); never a new anonymous one
        return
    try:
        code = learner_code()
        if st.session_state.get(RESTORE) and code:
            stored = store.load(code)
            st.session_state[RESTORE] = False
            if stored is None:
                st.session_state[STATUS] = "unknown_code"
                st.session_state[LEARNER] = code = None
                st.query_params.pop(LEARNER, None)
            else:
                _merge_under(stored, st.session_state["progress"])
                st.session_state["progress"] = stored
                st.session_state["progress_generation"] = st.session_state.get("progress_generation", 0) + 1
                st.session_state[STATUS] = "saved"
        if not pending:
            return
        if code is None:
            code = store.new_learner()
            st.session_state[LEARNER] = code
        for op in list(pending):
            kind, *args = op
            if kind == "read":
                store.mark_read(code, *args)
            elif kind == "answer":
                store.record_answer(code, *args)
            elif kind == "all":
                store.save(code, Progress.from_json(args[0]))
            pending.pop(0)
        st.session_state[STATUS] = "saved"
    except storage.StorageError as exc:
        st.session_state[STATUS] = exc.code


def _merge_under(stored: Progress, session: Progress) -> None:
    """Add what this session did (while the database was unreachable) on top of the stored progress."""
    for chapter, ids in session.lessons_read.items():
        for lesson in ids:
            stored.mark_read(chapter, lesson)
    for chapter, given in session.answers.items():
        for question, correct in given.items():
            stored.record_answer(chapter, question, correct)


def allow_try(name: str, limit: int, window_s: float = 60.0) -> bool:
    """Count one try of something guessable (a code typed by hand) in this session; False once
    `limit` tries fall within `window_s`. Per session: it slows a hand, not a botnet; what a
    guessed code opens is what bounds the harm (README)."""
    now = __import__("time").monotonic()
    tries = [t_ for t_ in st.session_state.get(name, []) if now - t_ < window_s]
    if len(tries) >= limit:
        st.session_state[name] = tries
        return False
    st.session_state[name] = [*tries, now]
    return True


def use_learner_code(text: str) -> str:
    """Continue from a code typed on another device: "ok", "bad_code", "unknown_code", "too_many"
    or a StorageError code. Five tries a minute per session keep guessing pointless."""
    if not allow_try("progress.code_tries", 5):
        return "too_many"
    code = storage.normalise_code(text)
    if code is None:
        return "bad_code"
    store = _store()
    if store is None:
        return "unavailable"
    try:
        stored = store.load(code)
    except storage.StorageError as exc:
        return exc.code
    if stored is None:
        return "unknown_code"
    st.session_state.update({LEARNER: code, PENDING: [], RESTORE: False, STATUS: "saved", "progress": stored})
    st.session_state["progress_generation"] = st.session_state.get("progress_generation", 0) + 1
    return "ok"


def forget_me() -> str:
    """Delete this learner's rows and start afresh: "ok" or a StorageError code."""
    code, store = learner_code(), _store()
    if code is not None:
        if store is None:
            return "unavailable"
        try:
            store.forget(code)
        except storage.StorageError as exc:
            return exc.code
    st.session_state.update({LEARNER: None, PENDING: [], RESTORE: False, STATUS: "idle", "progress": Progress()})
    st.session_state.update({LINKED: False})  # signed in: the next run links a fresh, empty code
    st.session_state["progress_generation"] = st.session_state.get("progress_generation", 0) + 1
    st.query_params.pop(LEARNER, None)
    return "ok"


def learner_sidebar() -> None:
    """Keep the code in the address on every page, and say whether progress is being saved."""
    _store()  # the first run of the process opens the database and applies the retention period
    progress()
    if signed_in() and not st.session_state.get(LINKED):
        link_account()  # the database was down at login, or "Forget me" asked for a fresh code
    if st.session_state.get(PENDING):
        sync()  # the database may be back
    code = learner_code()
    if signed_in():
        st.query_params.pop(LEARNER, None)  # the login carries the progress: no code in the address
    else:
        if code:
            st.query_params[LEARNER] = code
        keep_cookie(code if storage_status() == "saved" else None)
    status = storage_status()
    with st.sidebar:
        if login_configured():
            if signed_in():
                st.caption(t("learner.signed_in"))
                st.button(t("learner.log_out"), icon=":material/logout:", on_click=st.logout, key="learner.log_out")
            else:
                provider = os.environ.get("PRIMER_AUTH_PROVIDER") or None
                st.button(t("learner.log_in"), icon=":material/login:", on_click=st.login, args=(provider,),
                          key="learner.log_in")  # fmt: skip
        if status == "saved" and code and not signed_in():
            st.caption(t("learner.saved", code=code))
        elif status == "unknown_code":
            st.warning(t("learner.unknown_code"), icon=":material/help:")
        elif status not in ("saved", "idle"):
            st.warning(t("learner.not_saved"), icon=":material/cloud_off:")


def keep_cookie(code: str | None) -> None:
    """Write the learner code to this browser's cookie (or delete it after "Forget me"), once per
    change. Streamlit can read cookies but not set them, so a line of script does it. The code
    reaches the script only in its canonical form (words and digits, storage.normalise_code)."""
    if code is not None:
        code = storage.normalise_code(code)
    browser_has = storage.normalise_code(st.context.cookies.get(COOKIE, ""))
    written = st.session_state.get("learner.cookie", browser_has)
    if code == written:
        return
    if code is None and st.session_state.get(LEARNER) is not None:
        return  # a code that is not saved yet (database down): keep what the browser has
    st.session_state["learner.cookie"] = code
    age = COOKIE_DAYS * 86400 if code else 0
    value = json.dumps(f"{COOKIE}={code or ''}; Path=/; Max-Age={age}; SameSite=Lax")
    with st.sidebar:
        st.html(f"<script>document.cookie = {value};</script>", unsafe_allow_javascript=True, width="content")


def sidebar() -> None:
    """Language and instructor switches, drawn on every page (main.py calls this)."""
    with st.sidebar:
        st.segmented_control(
            t("ui.language"),
            list(i18n.LANGUAGES),
            format_func=i18n.LANGUAGES.get,
            default=i18n.DEFAULT_LANGUAGE,
            required=True,
            key="lang",
            **URL_STATE,
        )
        st.toggle(t("ui.instructor_mode"), key="instructor", help=t("ui.instructor_mode_help"), **URL_STATE)
        if instructor():
            st.toggle(t("ui.presentation_mode"), key="present", help=t("ui.presentation_mode_help"), **URL_STATE)
    learner_sidebar()
    if presenting():
        st.html(PRESENTATION_CSS)


PRESENTATION_CSS = """
<style>
/* Projector-friendly: larger type, full-width content, more room for figures. */
[data-testid="stMainBlockContainer"] { max-width: 100%; padding-top: 2rem; }
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMain"] td, [data-testid="stMain"] th { font-size: 1.35rem !important; }
/* A metric's value must stay larger than its label (a label's <p> matched the rule above). */
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 2.6rem !important; }
[data-testid="stMain"] h1 { font-size: 2.6rem !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2rem !important; }
</style>
"""


# How often a live view (training curves, a place in the queue) asks for news. An epoch takes a
# second or more here; every poll is a script run, and with a class training at once, polling
# twice a second cost more CPU than any other page (bench/load.py breaks the CPU down by page).
POLL_SECONDS = 1.0


def figure(fig, *, key: str | None = None, height: int | None = None) -> None:
    """Show a Plotly figure; taller when presenting so it reads from the back of the room."""
    from primer.light_figure import LightFigure  # not at import time: the home page needs no Plotly

    current = fig.height if isinstance(fig, LightFigure) else fig.layout.height  # a light layout stays a dict
    fig.update_layout(height=int((height or current or 420) * (1.35 if presenting() else 1.0)))
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def error_message(prefix: str, code: str, **details) -> str:
    """Translated message for an error code raised by the core, e.g. ("dicom", "not_dicom").

    The message is Markdown; a detail may come from the user's file (a folder name, an array
    key), so every detail is escaped to show as written."""
    key = f"{prefix}.error.{code}"
    if i18n.has_key(key):
        return t(key, **{name: literal(value, 120) for name, value in details.items()})
    return t("ui.error.unknown", code=literal(code, 40))


# ---------------------------------------------------------------------------------------------
# Chapter pages


class ChapterPage:
    """A chapter page: title, summary, lessons, labs and quiz, in the reading language."""

    def __init__(self, chapter_id: str):
        self.chapter = content.chapter(chapter_id)
        self.id = chapter_id
        self._hidden = None
        st.title(f"{self.chapter.text('title', lang())}")
        if not presenting():
            st.caption(self.chapter.text("summary", lang()))

    def t(self, key: str, **values) -> str:
        """A chapter string ("<chapter>.<key>"), falling back to a global one."""
        scoped = f"{self.id}.{key}"
        return t(scoped if i18n.has_key(scoped) else key, **values)

    def hidden_controls(self):
        """Where controls go that are not marked `keep` while presenting."""
        if self._hidden is None:
            self._hidden = st.sidebar.expander(t("ui.more_controls"), expanded=False)
        return self._hidden

    # Lessons ----------------------------------------------------------------------------------

    def lesson(self, lesson_id: str, *, expanded: bool = True) -> None:
        """Render one lesson section with its key terms and a "mark as read" box."""
        if presenting():
            return
        item = content.lesson(self.id, lesson_id, lang())
        render_lesson(self.id, item, expanded=expanded)

    # Labs -------------------------------------------------------------------------------------

    def lab(self, state_cls) -> LabBinding:
        return LabBinding(self, state_cls)

    # Quiz -------------------------------------------------------------------------------------

    def quiz(self) -> None:
        questions = quiz_core.load_quiz(self.id)
        if not questions or presenting():
            return
        st.header(t("quiz.title"))
        right, answered = progress().quiz_score(self.id, [q.id for q in questions])
        st.caption(t("quiz.score", right=right, answered=answered, total=len(questions)))
        for number, question in enumerate(questions, start=1):
            quiz_question(question, number)


def render_lesson(chapter_id: str, item: content.Lesson, *, expanded: bool = True) -> None:
    terms = content.glossary()
    with st.expander(item.title, expanded=expanded):
        st.markdown(content.render_term_links(item.body, lang()))
        linked = [terms[i] for i in content.terms_in(item.body) if i in terms]
        if linked:
            with st.popover(t("lesson.key_terms"), icon=":material/menu_book:"):
                for term in linked:
                    st.markdown(f"**{bi(term.term)}**: {bi(term.definition)}")
        read = item.id in progress().lessons_read.get(chapter_id, set())
        key = f"read.{chapter_id}.{item.id}.{st.session_state.get('progress_generation', 0)}"

        def toggle():
            progress().mark_read(chapter_id, item.id, st.session_state[key])
            remember(("read", chapter_id, item.id, bool(st.session_state[key])))

        st.checkbox(t("lesson.mark_read"), value=read, key=key, on_change=toggle)


class LabBinding:
    """Widgets for one lab's state dataclass, bound to the URL; `state()` rebuilds the dataclass."""

    def __init__(self, page: ChapterPage, state_cls):
        self.page = page
        self.cls = state_cls
        self.id = state_cls.lab_id
        self.defaults = labstate.field_defaults(state_cls)

    def key(self, field: str) -> str:
        return f"{self.id}.{field}"

    def _where(self, keep: bool):
        if presenting() and not keep:
            return self.page.hidden_controls()
        return contextlib.nullcontext()

    def _label(self, label_key: str) -> tuple[str, str | None]:
        help_key = f"{self.page.id}.{label_key}.help"
        return self.page.t(label_key), (t(help_key) if i18n.has_key(help_key) else None)

    def _bound(self, factory, field: str, label_key: str, keep: bool, parse, default_arg: dict, **kw):
        """Draw one control of the lab, bound to the address by hand: on its first draw in a
        session a valid value in the URL decides; afterwards the URL follows the control, and a
        default stays out of it. Streamlit's own binding is not used for lab controls: it writes
        a choice's translated label (a link made in Chinese would not open in English) and does
        not write a value a preset set before the control was first drawn."""
        if field not in self.defaults:
            raise KeyError(f"{self.id} has no field {field!r}")
        key = self.key(field)
        if key not in st.session_state and key in st.query_params:
            value = parse(st.query_params[key])
            if value is not None:  # anything else in the URL is ignored: the default stands
                st.session_state[key] = value
        label, help_text = self._label(label_key)
        kw.setdefault("help", help_text)
        if key in st.session_state:
            default_arg = {}  # the value is already in the session; a default too would warn
            if factory is st.selectbox and st.session_state.get(f"{key}.shown_in") not in (None, lang()):
                # A selectbox keeps showing the chosen option in the old language after a switch
                # (a Streamlit bug, streamlit#13788): writing the value again makes it redraw.
                st.session_state[key] = st.session_state[key]
        if factory is st.selectbox:
            st.session_state[f"{key}.shown_in"] = lang()
        with self._where(keep):
            value = factory(label, key=key, persist_state="session", **default_arg, **kw)
        if value is None or value == self.defaults[field]:
            st.query_params.pop(key, None)
        else:
            st.query_params[key] = url_text(value)
        return value

    def _number(self, factory, field, label_key, keep, kw):
        default = self.defaults[field]

        def parse(text: str):
            try:
                value = type(default)(float(text)) if isinstance(default, int) else float(text)
            except ValueError:
                return None
            low, high = kw.get("min_value"), kw.get("max_value")
            inside = (low is None or value >= low) and (high is None or value <= high)
            return value if inside and math.isfinite(value) else None

        return self._bound(factory, field, label_key, keep, parse, {"value": default}, **kw)

    def _flag(self, factory, field, label_key, keep, kw):
        def parse(text: str):
            return {"true": True, "1": True, "false": False, "0": False}.get(text.lower())

        return self._bound(factory, field, label_key, keep, parse, {"value": self.defaults[field]}, **kw)

    def _choice(self, factory, field, label_key, keep, options, default_arg: dict, **kw):
        options = list(options)
        by_text = {url_text(option): option for option in options}
        return self._bound(factory, field, label_key, keep, by_text.get, default_arg, options=options, **kw)

    def slider(self, field, label_key, *, keep=False, **kw):
        return self._number(st.slider, field, label_key, keep, kw)

    def select_slider(self, field, label_key, *, options, keep=False, **kw):
        value = {"value": self.defaults[field]}
        return self._choice(st.select_slider, field, label_key, keep, options, value, **kw)

    def selectbox(self, field, label_key, *, options, keep=False, **kw):
        index = {"index": list(options).index(self.defaults[field])}
        return self._choice(st.selectbox, field, label_key, keep, options, index, **kw)

    def radio(self, field, label_key, *, options, keep=False, **kw):
        index = {"index": list(options).index(self.defaults[field])}
        return self._choice(st.radio, field, label_key, keep, options, index, **kw)

    def segmented(self, field, label_key, *, options, keep=False, **kw):
        default = {"default": self.defaults[field]}
        return self._choice(st.segmented_control, field, label_key, keep, options, default, required=True, **kw)

    def number(self, field, label_key, *, keep=False, **kw):
        return self._number(st.number_input, field, label_key, keep, kw)

    def checkbox(self, field, label_key, *, keep=False, **kw):
        return self._flag(st.checkbox, field, label_key, keep, kw)

    def toggle(self, field, label_key, *, keep=False, **kw):
        return self._flag(st.toggle, field, label_key, keep, kw)

    def state(self):
        """The lab's dataclass from the current widget values (defaults for unrendered ones)."""
        values = {}
        for name, default in self.defaults.items():
            value = st.session_state.get(self.key(name), default)
            values[name] = default if value is None else value
        return self.cls(**values)

    def set(self, **values) -> None:
        """Set fields programmatically; call from a callback (before the widgets are drawn)."""
        for name, value in values.items():
            st.session_state[self.key(name)] = value

    def reset(self) -> None:
        self.set(**self.defaults)

    # Presets and sharing ---------------------------------------------------------------------

    def presets(self, *, keep: bool = True) -> None:
        """A preset picker; after Apply, the preset's one sentence of commentary. The picker is
        not part of the lab's state (the controls are), so a shared link restores the setup."""
        presets = labstate.load_presets(self.page.id).get(self.id, ())
        if not presets:
            return
        by_id = {p.id: p for p in presets}
        picker_key, applied_key = f"presetpick.{self.id}", f"presetapplied.{self.id}"

        def apply():
            chosen = by_id.get(st.session_state.get(picker_key))
            if chosen is not None:
                self.reset()
                self.set(**chosen.values)
                st.session_state[applied_key] = chosen.id

        with self._where(keep):
            cols = st.columns([3, 1], vertical_alignment="bottom")
            cols[0].selectbox(
                t("preset.label"),
                list(by_id),
                index=None,
                placeholder=t("preset.placeholder"),
                format_func=lambda pid: bi(by_id[pid].title),
                key=picker_key,
            )
            cols[1].button(t("preset.apply"), key=f"presetapply.{self.id}", on_click=apply, width="stretch")
            applied = by_id.get(st.session_state.get(applied_key))
            if applied is not None:
                # Keyed so a test can tell this session's note from the experiment's own output.
                st.container(key=f"presetnote.{self.id}").caption(f"**{bi(applied.title)}**: {bi(applied.commentary)}")
        if instructor() and not presenting():
            self.share_link()

    def share_link(self) -> None:
        """The URL that reopens this exact setup (instructor mode)."""
        with st.popover(t("preset.share"), icon=":material/link:"):
            st.caption(t("preset.share_help"))
            st.code(current_url(), language=None, wrap_lines=True)


def current_url() -> str:
    """This page's URL with every bound widget's current value in the query string."""
    base = urlsplit(st.context.url or "http://localhost:8501/")
    params = {k: v for k, v in st.query_params.to_dict().items()}
    query = urlencode(params, doseq=False)
    return f"{base.scheme}://{base.netloc}{base.path}" + (f"?{query}" if query else "")


# ---------------------------------------------------------------------------------------------
# Quiz


def quiz_question(question: quiz_core.Question, number: int, *, scope: str = "quiz") -> None:
    """One question: prompt, (figure), answer widget, Check, then verdict and explanation."""
    record = progress().answers.get(question.chapter, {})
    widget_key = f"{scope}.{question.key}"
    with st.container(border=True):
        st.markdown(f"**{number}.** {bi(question.prompt)}")
        key_value = question.answer
        if question.kind == "figure":
            fq = _figure_question(question)
            key_value = quiz_core.answer_key(question, fq)
            if isinstance(fq.figure, dict):
                layout = {**fq.figure.get("layout", {}), "height": fq.figure.get("layout", {}).get("height", 320)}
                from primer.light_figure import LightFigure

                # The cached dict as it is: given a plain dict, Streamlit would validate it by
                # building a full go.Figure (10–60 ms per quiz figure, on every rerun).
                st.plotly_chart(
                    LightFigure({**fq.figure, "layout": layout}),
                    key=f"{widget_key}.fig",
                    config={"displaylogo": False},
                )
            else:
                st.image(fq.figure, clamp=True, width=320)
        options = [bi(o) for o in question.options]
        kind = question.graded_as
        if kind == "single":
            st.radio(
                t("quiz.your_answer"),
                range(len(options)),
                format_func=options.__getitem__,
                index=None,
                key=widget_key,
                persist_state="session",
            )
        elif kind == "multiple":
            st.multiselect(
                t("quiz.choose_all"),
                range(len(options)),
                format_func=options.__getitem__,
                key=widget_key,
                persist_state="session",
            )
        else:
            st.number_input(t("quiz.your_answer"), value=None, format="%.4g", key=widget_key, persist_state="session")

        def check():
            response = st.session_state.get(widget_key)
            if kind == "multiple" and not response:
                response = None
            if response is None:
                st.session_state[f"{widget_key}.empty"] = True
                return
            st.session_state[f"{widget_key}.empty"] = False
            correct = quiz_core.grade(question, response, key_value)
            progress().record_answer(question.chapter, question.id, correct)
            remember(("answer", question.chapter, question.id, bool(correct)))

        st.button(t("quiz.check"), key=f"{widget_key}.check", on_click=check)
        if st.session_state.get(f"{widget_key}.empty"):
            st.warning(t("quiz.no_answer"))
        elif question.id in record:
            if record[question.id]:
                st.success(t("quiz.right"))
            else:
                st.error(t("quiz.wrong", answer=_answer_text(question, key_value, options)))
            st.info(bi(question.explanation))
            if question.lab:
                st.caption(t("quiz.see_lab", lab=_lab_title(question)))


@st.cache_resource(show_spinner=False, max_entries=128)
def _figure_question_cached(builder: str, params_items: tuple, lang: str) -> tuple[dict | object, object]:
    """(figure as a plain dict, or an image array; computed answer), built once per process and
    language: questions are deterministic, and a dict is cheap to hand to the browser on every rerun."""
    spec = {"builder": builder, "params": dict(params_items)}
    fake = quiz_core.Question(chapter="", id="", kind="figure", prompt={}, explanation={}, figure=spec)
    built = quiz_core.build_figure(fake, lang)
    figure = built.figure.to_plotly_json() if hasattr(built.figure, "to_plotly_json") else built.figure
    return figure, built.answer


def _figure_question(question: quiz_core.Question) -> quiz_core.FigureQuestion:
    params = tuple(sorted(question.figure.get("params", {}).items()))
    figure, answer = _figure_question_cached(question.figure["builder"], params, lang())
    return quiz_core.FigureQuestion(figure=figure, answer=answer)


def _answer_text(question, key_value, options) -> str:
    kind = question.graded_as
    if kind == "single":
        return options[int(key_value)]
    if kind == "multiple":
        return "; ".join(options[int(i)] for i in key_value)
    return f"{float(key_value):.4g}"


def _lab_title(question) -> str:
    for chapter in content.chapters():
        for lab in chapter.labs:
            if lab.id == question.lab:
                return f"{chapter.text('title', lang())} → {bi(lab.title)}"
    return question.lab


# ---------------------------------------------------------------------------------------------
# Models shared across chapters


@st.cache_resource(show_spinner=False)
def default_model():
    """The shipped default classifier (primer.default_model.DefaultModel), loaded once per
    process and shared read-only by every session. Heavy imports happen here, not at start-up."""
    from primer.default_model import load_default

    return load_default()


USER_RUN_KEY = "training.user_run"


def user_run():
    """The last finished run of this session's training lab (primer.train.RunResult), or None.
    The metrics and saliency chapters offer it beside the default model."""
    return st.session_state.get(USER_RUN_KEY)
