"""The terminology page in AppTest: every lab's controls move its numbers and figures, presets
apply, bad URL values are snapped, and "recompute live" goes through the training queue."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from primer import terminology as term
from tests.conftest import assert_no_exception, run_page

PAGE = "views/terminology.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def captions(at) -> str:
    return " ".join(str(c.value) for c in at.caption)


def charts(at) -> int:
    return len(at.get("plotly_chart"))


@pytest.fixture(scope="module")
def at():
    page = run_page(PAGE)
    assert_no_exception(page)
    return page


def test_page_opens_with_every_lab_and_no_error(at):
    assert not at.error, [e.value for e in at.error]
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.toggle, *at.segmented_control) if w.key}
    assert {
        "tasks.example",
        "tasks.num_lesions",
        "kinds.kind",
        "feat.contrast",
        "feat.beta",
        "feat.features",
        "curve.num_train",
        "noise.rate",
        "imbal.prevalence",
        "leak.images_per_patient",
    } <= keys
    assert charts(at) >= 12


def test_beta_figure_shows_the_same_background_at_four_betas(at):
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    titles = [[a["text"] for a in spec["layout"].get("annotations", [])] for spec in specs]
    figure = next(i for i, t in enumerate(titles) if "β = 1" in t)
    assert titles[figure] == ["β = 1", "β = 2", "β = 3", "β = 4"]
    images = [trace for trace in specs[figure]["data"] if trace["type"] == "image"]
    assert len(images) == 4, "one image panel per β"
    assert "four values of β" in captions(at)


def test_tasks_lab_label_table_follows_the_lesion_count(at):
    at.slider(key="tasks.num_lesions").set_value(1).run()
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert "4" in table.iloc[:, 2].tolist(), "one lesion: one box of four numbers"
    at.slider(key="tasks.num_lesions").set_value(4).run()
    assert "16" in at.dataframe[0].value.iloc[:, 2].tolist()
    assert "4 lesion(s)" in captions(at)


def test_kinds_lab_runs_each_example(at):
    at.segmented_control(key="kinds.kind").set_value("unsupervised").run()
    assert_no_exception(at)
    found = metrics(at)
    pixels = float(found["Agreement with truth, k-means on pixels"])
    assert pixels < float(found["Agreement, k-means on hand features"]), "clusters follow anatomy, not lesions"
    at.segmented_control(key="kinds.kind").set_value("self_supervised").run()
    at.select_slider(key="kinds.num_labels").set_value(20).run()
    found = metrics(at)
    assert float(found["AUC, same features after the pretext"]) > float(found["AUC, blob features of raw images"])
    at.segmented_control(key="kinds.kind").set_value("weakly_supervised").run()
    assert_no_exception(at)
    assert float(metrics(at)["Peak of the map on the lesion"].rstrip("%")) > 50
    at.segmented_control(key="kinds.kind").set_value("supervised").run()
    at.select_slider(key="kinds.num_labels").set_value(10).run()
    assert metrics(at)["Labels used"] == "10"


def test_features_lab_numbers_move_with_the_controls(at):
    def bars():
        text = next(c.value for c in at.caption if "hand-engineered pipeline" in str(c.value))
        return text

    before = bars()
    at.segmented_control(key="feat.features").set_value("generic").run()
    assert_no_exception(at)
    generic = bars()
    assert generic != before
    point = term.find_point(term.load_points("feat")["points"], contrast=2.5, beta=3.0)
    assert f"{point['hand_generic_auc']:.3f}" in generic and f"{point['test_auc']:.3f}" in generic
    at.select_slider(key="feat.contrast").set_value(1.5).run()
    assert bars() != generic


def test_learning_curve_metrics_follow_the_size(at):
    summary = term.curve_summary(term.load_points("curve")["points"])
    for n in (100, 5000):
        at.select_slider(key="curve.num_train").set_value(n).run()
        assert_no_exception(at)
        i = summary.sizes.index(n)
        assert metrics(at)["CNN test AUC (mean ± SD)"].startswith(f"{summary.mean['test_auc'][i]:.3f}")


def test_noise_lab_snaps_rates_between_kinds(at):
    at.select_slider(key="noise.rate").set_value(0.3).run()
    at.segmented_control(key="noise.kind").set_value("missed").run()
    assert_no_exception(at)
    assert at.select_slider(key="noise.rate").value in term.NOISE_RATES["missed"]
    at.select_slider(key="noise.rate").set_value(0.8).run()
    sensitivity = float(metrics(at)["Sensitivity at 0.5"])
    at.select_slider(key="noise.rate").set_value(0.0).run()
    assert float(metrics(at)["Sensitivity at 0.5"]) > sensitivity, "missed lesions make the model timid"


def test_imbalance_lab_accuracy_vs_sensitivity(at):
    at.select_slider(key="imbal.prevalence").set_value(0.02).run()
    at.segmented_control(key="imbal.fix").set_value("none").run()
    assert_no_exception(at)
    plain = metrics(at)
    assert plain["'All normal' accuracy"] == "98%"
    at.segmented_control(key="imbal.fix").set_value("threshold").run()
    moved = metrics(at)
    assert moved["AUC"] == plain["AUC"], "moving the threshold cannot change the AUC"
    assert float(moved["Sensitivity"].rstrip("%")) > float(plain["Sensitivity"].rstrip("%"))


def test_leakage_lab_shows_both_splits(at):
    at.select_slider(key="leak.images_per_patient").set_value(10).run()
    assert_no_exception(at)
    point = term.find_point(term.load_points("leak")["points"], images_per_patient=10, split_by="image")
    assert f"{point['val_auc']:.3f}" in captions(at) and f"{point['fresh_auc']:.3f}" in captions(at)
    assert "10 image(s) of one patient" in captions(at)


def test_a_preset_applies_its_values(at):
    at.selectbox(key="presetpick.imbal").set_value("oversample")
    at.button(key="presetapply.imbal").click().run()
    assert_no_exception(at)
    assert at.select_slider(key="imbal.prevalence").value == 0.02
    assert at.segmented_control(key="imbal.fix").value == "oversample"


def test_values_from_the_url_that_are_not_options_fall_back_to_defaults():
    page = run_page(PAGE, query={"feat.contrast": "2.7", "curve.num_train": "4000", "noise.kind": "bogus"})
    assert_no_exception(page)
    assert page.select_slider(key="feat.contrast").value == term.FeaturesLab.contrast
    assert page.select_slider(key="curve.num_train").value == term.CurveLab.num_train
    assert page.segmented_control(key="noise.kind").value == "random"


class FakeQueue:
    """Stands in for primer.jobs' queue: records the submission, returns a finished job."""

    def __init__(self):
        self.submitted = []

    def submit(self, lab, data=None, data_key="phantom", kind="train"):
        self.submitted.append((lab, data, data_key))
        n_val = int((data.split_index == 1).sum())
        history = SimpleNamespace(epochs=[SimpleNamespace(val_auc=0.5)] * 3, best_epoch=2)
        result = SimpleNamespace(
            history=history,
            test_auc=0.777,
            val_labels=np.arange(n_val) % 2,
            val_probs=np.stack([1 - (np.arange(n_val) % 2), np.arange(n_val) % 2], axis=1).astype(float),
            seconds=1.0,
        )
        return SimpleNamespace(finished=True, state="done", key=data_key, result=result, elapsed=lambda: 1.0)


def test_recompute_live_submits_the_same_setup_to_the_queue(monkeypatch):
    import primer.jobs

    queue = FakeQueue()
    monkeypatch.setattr(primer.jobs, "training_queue", lambda: queue)
    page = run_page(PAGE, query={"curve.num_train": "50"})
    page.button(key="live.curve").click().run()
    assert_no_exception(page)
    lab, data, data_key = queue.submitted[0]
    assert '"num_train": 50' in data_key and lab.early_stopping_patience > 0
    assert int((data.split_index == 0).sum()) == 50
    table = page.dataframe[-1].value
    assert "0.777" in table.to_string() and "1.000" in table.to_string()


def test_glossary_filters_by_text_and_chapter_and_puts_a_linked_term_first():
    from primer import content

    page = run_page("views/glossary.py", query={"term": "data_leakage"})
    assert_no_exception(page)
    total = len(content.glossary())
    assert f"{total} of {total} terms" in captions(page)
    assert "Data leakage" in page.markdown[0].value, "the linked term comes first"
    assert "linked from a lesson" in page.markdown[0].value
    page.selectbox(key="glossary_chapter").set_value("terminology").run()
    ours = sum(t.chapter == "terminology" for t in content.glossary().values())
    assert f"{ours} of {total} terms" in captions(page)
    page.text_input(key="glossary_query").input("imbalance").run()
    shown = [m.value for m in page.markdown if m.value.startswith("**")]
    assert shown and all("imbalance" in s.lower() or "Class imbalance" in s for s in shown[:1])
    assert "glossary?term=prevalence" in captions(page), "related terms link to their entries"
