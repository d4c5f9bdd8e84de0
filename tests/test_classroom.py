"""The live class core (primer.classroom) on SQLite and PostgreSQL: secrets, isolation between
classes, polls counted against the answers sent, follow me, overview, deletion and retention."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from primer import classroom, storage
from primer.classroom import ClassError, Classroom
from tests.conftest import count


@pytest.fixture
def room(db_url):
    return Classroom(storage.Store(db_url))


def test_join_codes_are_short_readable_and_the_key_is_stored_only_as_a_hash(room, db_url):
    made = room.create_class("Workshop")
    assert len(made.join_code) == 6 and set(made.join_code) <= set(classroom.JOIN_ALPHABET)
    assert classroom.normalise_join_code(f" {made.join_code.lower()[:3]}-{made.join_code[3:]} ") == made.join_code
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT key_salt, key_hash FROM classes")).one()
        dump = " ".join(str(v) for v in conn.execute(sa.text("SELECT * FROM classes")).one())
    engine.dispose()
    assert made.instructor_key not in dump
    expected = hashlib.scrypt(made.instructor_key.encode(), salt=bytes(row.key_salt), n=2**14, r=8, p=1, dklen=32)
    assert bytes(row.key_hash) == expected
    room.check_key(made.class_id, made.instructor_key)  # no error


def test_a_wrong_key_is_refused_and_rate_limited(room):
    made = room.create_class("Workshop")
    for _ in range(classroom.KEY_TRIES):
        with pytest.raises(ClassError) as error:
            room.poll_counts(made.class_id, "guess", 1)
        assert error.value.code == "bad_key"
    with pytest.raises(ClassError) as error:  # even the right key waits out the minute
        room.check_key(made.class_id, made.instructor_key)
    assert error.value.code == "too_many_tries"


def test_a_live_poll_counts_every_answer_without_names(room, db_url):
    made = room.create_class("Workshop")
    students = [room.join(made.join_code, f"student {i}") for i in range(12)]
    poll = room.open_poll(made.class_id, made.instructor_key, "training", "chance_loss")
    sent = {}
    for i, member in enumerate(students):
        sent[member] = str(i % 3)
        room.answer(member, poll, sent[member], correct=(i % 3 == 1))
    room.answer(students[0], poll, "2", correct=False)  # a changed mind replaces the first answer
    sent[students[0]] = "2"
    counts = room.poll_counts(made.class_id, made.instructor_key, poll)
    expected = {a: list(sent.values()).count(a) for a in set(sent.values())}
    assert counts == expected and sum(counts.values()) == len(students)
    assert count(db_url, "poll_answers", str(poll), column="poll_id") == len(students)  # 0 lost, 0 doubled
    current = room.current_poll(students[3])
    assert (current.chapter, current.question, current.revealed) == ("training", "chance_loss", False)
    room.reveal(made.class_id, made.instructor_key, poll)
    assert room.current_poll(students[3]).revealed


def test_a_student_of_one_class_can_never_reach_another_class(room):
    ours, theirs = room.create_class("A"), room.create_class("B")
    student = room.join(ours.join_code)
    their_poll = room.open_poll(theirs.class_id, theirs.instructor_key, "metrics", "q")
    room.push(theirs.class_id, theirs.instructor_key, "/metrics?x=1")
    assert room.current_poll(student) is None  # their poll is not ours
    assert room.following(student) is None
    with pytest.raises(ClassError) as error:
        room.answer(student, their_poll, "0", True)
    assert error.value.code == "no_poll"
    with pytest.raises(ClassError):  # our key opens nothing of theirs
        room.poll_counts(theirs.class_id, ours.instructor_key, their_poll)
    with pytest.raises(ClassError) as error:
        room.current_poll("not-a-member")
    assert error.value.code == "not_a_member"
    with pytest.raises(ClassError):
        room.join("ZZZZZZ")  # no such class (the alphabet has no Z-free guarantee, but no class has it)


def test_follow_me_only_pushes_paths_of_this_app(room):
    made = room.create_class("Workshop")
    student = room.join(made.join_code)
    room.push(made.class_id, made.instructor_key, "/training?train.num_epochs=3")
    assert room.following(student)[0] == "/training?train.num_epochs=3"
    for bad in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)", "/" + "x" * 5000):
        with pytest.raises(ClassError):
            room.push(made.class_id, made.instructor_key, bad)


def test_nicknames_are_plain_text_and_short(room):
    made = room.create_class("Workshop")
    room.join(made.join_code, "x" * 10_000)
    room.join(made.join_code, "<b>bold</b>\x00\n**md**")
    names = room.nicknames(made.class_id, made.instructor_key)
    assert sorted(len(n) for n in names) == [len("<b>bold</b>**md**"), classroom.MAX_NICKNAME]
    assert "<b>bold</b>**md**" in names  # kept as written (the page shows it as text), control characters gone


def test_overview_counts_lessons_and_scores_of_the_class_only(room):
    store = room.store
    made, other = room.create_class("A"), room.create_class("B")
    codes = [store.new_learner() for _ in range(3)]
    for code in codes:
        room.join(made.join_code, learner=code)
    outsider = store.new_learner()
    room.join(other.join_code, learner=outsider)
    store.mark_read(codes[0], "training", "loss")
    store.mark_read(codes[1], "training", "loss")
    store.mark_read(outsider, "training", "loss")
    store.record_answer(codes[0], "training", "q1", True)
    store.record_answer(codes[0], "training", "q2", False)
    store.record_answer(codes[2], "training", "q1", True)
    view = room.overview(made.class_id, made.instructor_key)
    assert view["students"] == 3
    assert view["lessons"] == {"training": {"loss": 2}}
    assert sorted(view["scores"]["training"]) == [(1, 1), (1, 2)]


def test_deleting_a_class_removes_every_row_and_retention_removes_old_ones(room, db_url):
    made, kept = room.create_class("A"), room.create_class("B")
    members = [room.join(made.join_code) for _ in range(3)]
    poll = room.open_poll(made.class_id, made.instructor_key, "training", "q")
    for m in members:
        room.answer(m, poll, "1", True)
    with pytest.raises(ClassError):
        room.check_key(made.class_id, "wrong")  # leaves a key_failures row
    room.delete_class(made.class_id, made.instructor_key)
    for table, column in (
        ("classes", "id"),
        ("members", "class_id"),
        ("polls", "class_id"),
        ("key_failures", "class_id"),
    ):
        assert count(db_url, table, made.class_id, column=column) == 0, table
    assert count(db_url, "poll_answers") == 0
    assert count(db_url, "classes") == 1
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE classes SET created_at = created_at - 10 * 86400"))
    engine.dispose()
    assert room.delete_old(7 * 86400) == 1 and count(db_url, "classes") == 0
    assert kept.class_id


def test_forget_me_unlinks_a_learner_from_their_classes(room, db_url):
    made = room.create_class("A")
    code = room.store.new_learner()
    room.join(made.join_code, learner=code)
    room.store.forget(code)
    assert room.overview(made.class_id, made.instructor_key)["students"] == 0
    assert count(db_url, "members") == 1  # the seat stays (its poll answers are anonymous), the link goes


# ---------------------------------------------------------------------------------------------
# The page, in AppTest: one instructor session and two student sessions on one database


def test_a_class_end_to_end_in_the_page(app_db):
    from tests.conftest import assert_no_exception, run_page

    teacher = run_page("views/classroom.py")
    create = next(b for b in teacher.button if "Create a class" in str(b.label))
    teacher.text_input[2].input("Workshop <b>1</b>")  # the create form's title (after the join form's two)
    create.click().run()
    assert_no_exception(teacher)
    join_code = teacher.session_state["class.teach"]["join"]
    assert any(m.value == join_code for m in teacher.metric)

    students = []
    for name in ("Ana", "<img src=x onerror=alert(1)>"):
        s = run_page("views/classroom.py")
        s.text_input[0].input(join_code.lower())
        s.text_input[1].input(name)
        next(b for b in s.button if str(b.label) == "Join").click().run()
        assert_no_exception(s)
        assert s.session_state["class.member"]["nickname"] == name
        students.append(s)

    teacher.button(key="class.start").click().run()
    assert_no_exception(teacher)
    chapter, question_id = teacher.session_state["class.teach"]["poll_question"]
    for i, s in enumerate(students):
        s.run()  # the sidebar panel now shows the poll
        poll_id = teacher.session_state["class.teach"]["poll"]
        s.radio(key=f"class.poll.{poll_id}").set_value(i)
        s.button(key=f"class.send.{poll_id}").click().run()
        assert_no_exception(s)
    teacher.run()
    assert any("Answers so far: 2" in c.value for c in teacher.caption)
    teacher.button(key="class.reveal").click().run()
    students[0].run()
    assert any(x.value.startswith("Answer:") for x in students[0].sidebar.success)
    teacher.button(key="class.delete").click().run()
    assert count(app_db, "classes") == 0 and count(app_db, "members") == 0


def test_the_deployment_retention_period_is_applied_when_the_app_starts(app_db, monkeypatch):
    from app import ui
    from tests.conftest import run_page

    store = storage.Store(app_db)
    room = Classroom(store)
    old_class, new_class = room.create_class("old"), room.create_class("new")
    old_learner = store.new_learner()
    engine = sa.create_engine(app_db)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE classes SET created_at = created_at - 8 * 86400 WHERE id = :i"), {"i": old_class.class_id}
        )
        conn.execute(sa.text("UPDATE learners SET seen_at = seen_at - 8 * 86400 WHERE code = :c"), {"c": old_learner})
    engine.dispose()
    monkeypatch.setenv("PRIMER_RETENTION_DAYS", "7")
    ui._store.clear()
    run_page()
    assert count(app_db, "classes") == 1 and count(app_db, "learners") == 0
    assert room.class_for(new_class.join_code) == new_class.class_id


def test_wrong_class_codes_are_said_and_limited_per_session(app_db):
    """A mistyped code gets its message; the eleventh try in a minute is refused without a
    database lookup, and the right code then waits too (the limit counts tries, not misses)."""
    from app.widgets.classroom import JOIN_TRIES
    from tests.conftest import assert_no_exception, run_page

    real = Classroom(storage.Store(app_db)).create_class("Workshop")
    s = run_page("views/classroom.py")
    join = next(b for b in s.button if str(b.label) == "Join")
    for i in range(JOIN_TRIES):
        s.text_input[0].input(f"ZZZZZ{'23456789'[i % 8]}")
        join.click().run()
        assert_no_exception(s)
        assert [e.value for e in s.error] == ["No class has this code."]
    s.text_input[0].input(real.join_code)
    join.click().run()
    assert any("Too many class codes" in e.value for e in s.error)
    assert "class.member" not in s.session_state
    assert count(app_db, "members") == 0


def question_of_kind(kind: str):
    from primer import content, quiz

    return next(q for c in content.chapters() for q in quiz.load_quiz(c.id) if q.kind == kind and q.graded_as == kind)


def test_poll_answers_of_every_kind_round_trip_and_are_summarized_as_counted_by_hand():
    single, multiple, numeric = (question_of_kind(k) for k in ("single", "multiple", "numeric"))
    assert classroom.encode_answer("multiple", [3, 0, 3]) == "0,3"
    assert classroom.decode_answer("numeric", classroom.encode_answer("numeric", 0.1 + 0.2)) == 0.1 + 0.2
    with pytest.raises(classroom.ClassError):
        classroom.encode_answer("numeric", float("nan"))
    with pytest.raises(classroom.ClassError):
        classroom.encode_answer("multiple", [])
    assert classroom.decode_answer("single", "<b>x</b>") is None

    # single: 3 students chose the right option, 2 another one, 1 stored string is not an answer
    right, wrong = single.answer, (single.answer + 1) % len(single.options)
    s = classroom.summarize(single, {str(right): 3, str(wrong): 2, "junk": 1})
    assert (s.n, s.right, s.option_counts[right], s.option_counts[wrong], sum(s.option_counts)) == (5, 3, 3, 2, 5)

    # multiple: exactly the key (2 students), the key plus a wrong option (1), one option only (1)
    key = sorted(multiple.answer)
    extra = next(i for i in range(len(multiple.options)) if i not in key)
    counts = {
        classroom.encode_answer("multiple", key): 2,
        classroom.encode_answer("multiple", [*key, extra]): 1,
        classroom.encode_answer("multiple", key[:1]): 1,
    }
    s = classroom.summarize(multiple, counts)
    expected = [0] * len(multiple.options)
    for answer, n in ((key, 2), ([*key, extra], 1), (key[:1], 1)):
        for i in answer:
            expected[i] += n
    assert s.n == 4 and list(s.option_counts) == expected
    assert s.right == 2 + (1 if len(key) == 1 else 0)  # key[:1] is right only when the key has one option

    # numeric: the answer itself (2 students), just inside and well outside the tolerance
    value = float(numeric.answer)
    tolerance = numeric.tolerance if numeric.tolerance is not None else 0.01 * abs(value)
    inside, outside = value + 0.9 * tolerance, value + 10 * tolerance + 1
    s = classroom.summarize(numeric, {repr(value): 2, repr(inside): 1, repr(outside): 1})
    assert s.n == 4 and s.right == 3 and s.values == tuple(sorted([value, value, inside, outside]))


def test_a_numeric_poll_in_the_page_counts_and_reveals(app_db):
    from tests.conftest import assert_no_exception, run_page

    question = question_of_kind("numeric")
    teacher = run_page("views/classroom.py")
    next(b for b in teacher.button if "Create a class" in str(b.label)).click().run()
    join_code = teacher.session_state["class.teach"]["join"]
    teacher.selectbox(key="class.pick").set_value(question.key)
    teacher.button(key="class.start").click().run()
    assert_no_exception(teacher)
    poll_id = teacher.session_state["class.teach"]["poll"]
    for given in (float(question.answer), float(question.answer) * 3 + 7):
        s = run_page("views/classroom.py")
        s.text_input[0].input(join_code)
        next(b for b in s.button if str(b.label) == "Join").click().run()
        s.run()
        s.number_input(key=f"class.poll.{poll_id}").set_value(given)
        s.button(key=f"class.send.{poll_id}").click().run()
        assert_no_exception(s)
        assert any(c.value == f"Sent: {given:g}" for c in s.sidebar.caption)
    teacher.run()
    captions = [c.value for c in teacher.caption]
    assert "Answers so far: 2" in captions and "Right so far: 1 of 2" in captions
    teacher.button(key="class.reveal").click().run()
    assert any(x.value == f"Answer: {float(question.answer):g}" for x in teacher.success)
