"""Progress kept between visits: the storage module against real databases, and the app using it.

The core tests run on SQLite (a file per test) and, when PRIMER_TEST_POSTGRES_URL names a server
(.ci/run starts one on loopback), on PostgreSQL too; nothing is mocked. Row counts are read back
with plain SQL, independently of the module's own queries.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import sqlalchemy as sa

from primer import storage
from primer.progress import Progress
from tests.conftest import BACKENDS, assert_no_exception, count, run_page


def test_ci_runs_the_storage_tests_on_postgresql_too():
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and "postgresql" not in BACKENDS:
        pytest.fail("CI=true but PRIMER_TEST_POSTGRES_URL is not set: .ci/run must start bin/postgres-for-tests")


def test_codes_are_three_words_and_a_number_and_survive_retyping(db_url):
    store = storage.Store(db_url)
    codes = {store.new_learner() for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        words = code.split("-")
        assert len(words) == 4 and all(w in storage.CODE_WORDS for w in words[:3]) and 1000 <= int(words[3]) <= 9999
        assert storage.normalise_code(code) == code
        assert storage.normalise_code("  " + code.upper().replace("-", " ") + " ") == code
    assert count(db_url, "learners") == 50
    for bad in ("", "amber", "amber-heron-delta", "amber-heron-nope-1234", "amber-heron-delta-12", "x" * 10_000):
        assert storage.normalise_code(bad) is None, bad


def test_progress_round_trip_equals_the_same_progress_built_by_hand(db_url):
    store = storage.Store(db_url)
    code = store.new_learner()
    store.mark_read(code, "training", "loss")
    store.mark_read(code, "training", "lr")
    store.mark_read(code, "training", "lr", read=False)  # unmarked again
    store.mark_read(code, "metrics", "roc")
    store.record_answer(code, "training", "q1", False)
    store.record_answer(code, "training", "q1", True)  # a second try replaces the first
    store.record_answer(code, "metrics", "q2", False)
    expected = Progress()
    expected.mark_read("training", "loss")
    expected.mark_read("metrics", "roc")
    expected.record_answer("training", "q1", True)
    expected.record_answer("metrics", "q2", False)
    loaded = storage.Store(db_url).load(code)  # another process's view: a fresh engine
    assert loaded.lessons_read == expected.lessons_read and loaded.answers == expected.answers
    assert count(db_url, "lessons_read", code) == 2 and count(db_url, "answers", code) == 2


def test_save_replaces_everything_and_unknown_codes_load_nothing(db_url):
    store = storage.Store(db_url)
    code = store.new_learner()
    store.mark_read(code, "training", "loss")
    imported = Progress.from_json(
        '{"format": "dl-primer-progress", "version": 1, "lessons_read": {"imaging": ["hu", "window"]},'
        ' "answers": {"imaging": {"w1": true}}}'
    )
    store.save(code, imported)
    loaded = store.load(code)
    assert loaded.lessons_read == {"imaging": {"hu", "window"}} and loaded.answers == {"imaging": {"w1": True}}
    assert store.load("amber-heron-delta-1234") is None
    store.save("amber-heron-delta-1234", imported)  # save() registers a code it does not know
    assert store.exists("amber-heron-delta-1234")


def test_forget_me_deletes_every_row_of_that_learner_only(db_url):
    store = storage.Store(db_url)
    mine, theirs = store.new_learner(), store.new_learner()
    for code in (mine, theirs):
        store.mark_read(code, "training", "loss")
        store.record_answer(code, "training", "q1", True)
    assert store.forget(mine) is True
    assert count(db_url, "learners", mine) == count(db_url, "lessons_read", mine) == count(db_url, "answers", mine) == 0
    assert count(db_url, "lessons_read", theirs) == 1 and store.load(theirs).quiz_score("training") == (1, 1)
    assert store.forget(mine) is False  # nothing left


def test_retention_deletes_idle_learners(db_url):
    store = storage.Store(db_url)
    old, recent = store.new_learner(), store.new_learner()
    store.record_answer(old, "training", "q1", True)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE learners SET seen_at = seen_at - 400 * 86400 WHERE code = :c"), {"c": old})
    engine.dispose()
    assert store.delete_idle(365 * 86400) == 1
    assert store.load(old) is None and store.load(recent) is not None
    assert count(db_url, "answers", old) == 0


def test_schema_is_created_once_and_a_newer_schema_is_refused(db_url):
    store = storage.Store(db_url)
    assert store.migrate() == storage.SCHEMA_VERSION
    assert storage.Store(db_url).migrate() == storage.SCHEMA_VERSION  # idempotent
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE primer_schema SET version = 99"))
    engine.dispose()
    with pytest.raises(storage.StorageError) as error:
        storage.Store(db_url).migrate()
    assert error.value.code == "schema_newer"


def test_a_version_2_database_gains_the_accounts_table(db_url):
    """A database the previous release made (no accounts table, version 2) is migrated in place."""
    storage.Store(db_url).migrate()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE accounts"))
        conn.execute(sa.text("UPDATE primer_schema SET version = 2"))
    store = storage.Store(db_url)
    assert store.migrate() == 3
    assert "accounts" in sa.inspect(engine).get_table_names()
    engine.dispose()
    assert store.load(store.account_learner(storage.account_identity("https://idp", "a"))) is not None


def test_an_account_keeps_one_code_per_person_and_forget_me_lets_it_start_afresh(db_url):
    store = storage.Store(db_url)
    alice = storage.account_identity("https://login.hospital.example", "u-17")
    assert alice == hashlib.sha256(b"https://login.hospital.example\nu-17").hexdigest()  # no name, no e-mail
    code = store.account_learner(alice)
    assert storage.normalise_code(code) == code
    store.mark_read(code, "imaging", "hu")
    assert store.account_learner(alice) == code  # a second login, another device: the same progress
    assert store.load(store.account_learner(alice)).lessons_read == {"imaging": {"hu"}}
    other_provider = storage.account_identity("https://other.example", "u-17")  # same subject, other issuer
    assert store.account_learner(other_provider) != code
    assert store.forget(code)
    assert count(db_url, "accounts", None) == 1  # only the other provider's account is left
    fresh = store.account_learner(alice)
    assert fresh != code and store.load(fresh).lessons_read == {}


def test_a_database_that_is_down_or_read_only_raises_storage_error(tmp_path):
    down = storage.Store("postgresql+psycopg://primer@127.0.0.1:9/none", connect_timeout=1)
    with pytest.raises(storage.StorageError) as error:
        down.new_learner()
    assert error.value.code == "unavailable"
    path = tmp_path / "primer.db"
    storage.Store(f"sqlite:///{path}").migrate()
    # Opened read-only (a full disk or a read-only volume refuses writes the same way; as root,
    # file permissions would not): the write fails with a StorageError, not a crash.
    read_only = storage.Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(storage.StorageError):
        read_only.new_learner()
    assert read_only.load("amber-heron-delta-1234") is None  # reading still works


# ---------------------------------------------------------------------------------------------
# The app


def answer_first_question(at):
    from primer import content, quiz

    chapter = next(c for c in content.chapters() if quiz.load_quiz(c.id))
    question = next(q for q in quiz.load_quiz(chapter.id) if q.kind == "single")
    at.switch_page(chapter.page).run()
    key = f"quiz.{question.key}"
    at.radio(key=key).set_value(question.answer)
    at.button(key=f"{key}.check").click().run()
    assert_no_exception(at)
    return chapter.id, question.id


def test_progress_comes_back_with_the_code_in_a_new_session(app_db):
    at = run_page()
    assert "learner" not in at.query_params  # nothing stored for a visitor who has done nothing
    chapter_id, question_id = answer_first_question(at)
    code = at.query_params["learner"][0] if isinstance(at.query_params["learner"], list) else at.query_params["learner"]
    assert storage.normalise_code(code) == code
    assert count(app_db, "answers", code) == 1
    again = run_page(query={"learner": code})  # a new browser (or a restarted server): only the code
    assert_no_exception(again)
    assert again.session_state["progress"].answers == {chapter_id: {question_id: True}}
    assert any(code in str(c.value) for c in again.sidebar.caption)


AUTH = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "test-only",
                 "client_id": "primer", "client_secret": "x", "server_metadata_url": "https://idp.example/.well-known"}}  # fmt: skip


def test_with_login_configured_the_account_replaces_the_code(app_db):
    """An institution's OpenID Connect login (st.login): progress follows the person, no code in
    the address; another device with the same login gets it back, another person does not."""
    resident = {"is_logged_in": True, "iss": "https://idp.example", "sub": "resident-7", "email": "r7@example.org"}
    at = run_page(user=resident, secrets=AUTH)
    assert_no_exception(at)
    assert any("Logged in" in str(c.value) for c in at.sidebar.caption)
    assert at.sidebar.button(key="learner.log_out")
    chapter_id, question_id = answer_first_question(at)
    assert "learner" not in at.query_params
    code = storage.Store(app_db).account_learner(storage.account_identity("https://idp.example", "resident-7"))
    assert count(app_db, "answers", code) == 1
    assert count(app_db, "accounts", None) == 1
    engine = sa.create_engine(app_db)
    with engine.connect() as conn:  # nothing personal is stored: only the hash of issuer and subject
        stored = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM accounts")) for v in row)
    engine.dispose()
    assert "resident-7" not in stored and "r7@" not in stored
    again = run_page(user=resident, secrets=AUTH)  # another device, the same login
    assert again.session_state["progress"].answers == {chapter_id: {question_id: True}}
    other = run_page(user={**resident, "sub": "resident-8"}, secrets=AUTH)
    assert other.session_state["progress"].answers == {}
    page = run_page("views/progress.py", user=resident, secrets=AUTH)
    assert any("You are logged in" in m.value for m in page.markdown) and not page.code  # no code to copy
    page.button(key="learner_forget").click().run()
    assert_no_exception(page)
    assert count(app_db, "answers", code) == 0
    fresh = run_page(user=resident, secrets=AUTH)  # the next login: a new, empty progress
    assert fresh.session_state["progress"].answers == {} and fresh.session_state["learner"] != code


def test_login_is_offered_only_where_it_is_configured(app_db):
    logged_out = run_page(user={"is_logged_in": False}, secrets=AUTH)
    assert_no_exception(logged_out)
    assert logged_out.sidebar.button(key="learner.log_in")
    plain = run_page()
    assert not [b for b in plain.sidebar.button if b.key in ("learner.log_in", "learner.log_out")]


def test_an_unknown_or_malformed_code_is_said_and_the_app_keeps_working(app_db):
    at = run_page(query={"learner": "amber-heron-delta-1234"})
    assert_no_exception(at)
    assert any("No progress is saved" in w.value for w in at.sidebar.warning)
    at = run_page(query={"learner": "<script>alert(1)</script>"})
    assert_no_exception(at)
    assert not at.sidebar.warning and at.session_state["progress"].answers == {}


def test_progress_page_continues_with_a_typed_code_and_forgets(app_db):
    store = storage.Store(app_db)
    code = store.new_learner()
    store.record_answer(code, "training", "chance_loss", True)
    at = run_page("views/progress.py")
    at.text_input[0].input("not a code")
    at.button[0].click().run()  # the form's Continue
    assert any("three words and a number" in e.value for e in at.error)
    at.text_input[0].input(code.upper().replace("-", " "))
    at.button[0].click().run()
    assert_no_exception(at)
    assert at.session_state["progress"].answers == {"training": {"chance_loss": True}}
    assert any(code == c.value for c in at.code)
    at.button(key="learner_forget").click().run()
    assert_no_exception(at)
    assert count(app_db, "learners", code) == 0 and count(app_db, "answers", code) == 0
    assert at.session_state["progress"].answers == {} and "learner" not in at.query_params


def test_typing_codes_is_rate_limited(app_db):
    at = run_page("views/progress.py")
    for _ in range(5):
        at.text_input[0].input("amber-heron-delta-1234")
        at.button[0].click().run()
    assert any("No progress is saved under that code" in e.value for e in at.error)
    at.text_input[0].input("amber-heron-delta-1234")
    at.button[0].click().run()
    assert any("Too many tries" in e.value for e in at.error)


def test_a_database_that_is_down_keeps_the_app_working_and_saves_when_back(tmp_path, monkeypatch):
    from app import ui

    monkeypatch.setenv("PRIMER_DATABASE_URL", "postgresql+psycopg://primer@127.0.0.1:9/none")
    ui._store.clear()
    at = run_page()
    chapter_id, question_id = answer_first_question(at)
    assert at.session_state["progress"].answers == {chapter_id: {question_id: True}}  # kept in the session
    assert any("not being saved" in w.value for w in at.sidebar.warning)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    monkeypatch.setenv("PRIMER_DATABASE_URL", back)
    ui._store.clear()
    at.run()  # any next interaction
    assert_no_exception(at)
    code = at.session_state["learner"]
    assert code and count(back, "answers", code) == 1
    assert not at.sidebar.warning
    ui._store.clear()


def test_logged_in_while_the_database_is_down_saves_to_the_account_when_back(tmp_path, monkeypatch):
    """What a logged-in learner did while the database was down goes to their account's code,
    not to a new anonymous one, once it is back."""
    from app import ui

    monkeypatch.setenv("PRIMER_DATABASE_URL", "postgresql+psycopg://primer@127.0.0.1:9/none")
    ui._store.clear()
    resident = {"is_logged_in": True, "iss": "https://idp.example", "sub": "resident-9"}
    at = run_page(user=resident, secrets=AUTH)
    chapter_id, question_id = answer_first_question(at)
    assert any("not being saved" in w.value for w in at.sidebar.warning)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    monkeypatch.setenv("PRIMER_DATABASE_URL", back)
    ui._store.clear()
    at.run()
    assert_no_exception(at)
    code = storage.Store(back).account_learner(storage.account_identity("https://idp.example", "resident-9"))
    assert at.session_state["learner"] == code and count(back, "answers", code) == 1
    assert count(back, "learners") == 1  # no anonymous code was made on the side
    ui._store.clear()
