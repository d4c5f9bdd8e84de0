"""The training lab in AppTest: controls, presets, a short real training run, own data, errors."""

import io
import time
import zipfile

import numpy as np
from PIL import Image

from tests.conftest import assert_no_exception, run_page

PAGE = "views/training.py"
TINY = {"train.num_images": "500", "train.num_epochs": "2", "train.width": "4"}


def wait_for_job(at, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = at.session_state["training.job"]
        if job.finished:
            return job
        time.sleep(0.2)
    raise AssertionError("training did not finish")


def texts(at) -> str:
    return " ".join(
        str(e.value) for e in (*at.markdown, *at.caption, *at.subheader, *at.info, *at.error, *at.warning, *at.success)
    )


def test_page_shows_controls_and_a_data_preview():
    at = run_page(PAGE)
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.selectbox, *at.toggle, *at.number_input) if w.key}
    assert {
        "train.contrast",
        "train.learning_rate",
        "train.batch_size",
        "train.num_epochs",
        "train.seed",
        "train.task",
    } <= keys
    assert at.get("plotly_chart"), "the data preview is drawn"
    assert "ideal observer" in texts(at)


def test_a_preset_sets_its_values():
    at = run_page(PAGE)
    at.selectbox(key="presetpick.train").set_value("overfit")
    at.button(key="presetapply.train").click().run()
    assert_no_exception(at)
    assert at.select_slider(key="train.num_train").value == 150
    assert at.select_slider(key="train.width").value == 16
    assert at.slider(key="train.num_epochs").value == 30
    assert "150 training images" in texts(at)


def test_train_streams_curves_and_ends_with_a_results_card():
    at = run_page(PAGE, query=TINY)
    at.button(key="training.train").click().run()
    assert_no_exception(at)
    job = wait_for_job(at)
    assert job.state == "done", job.error
    at.run()
    assert_no_exception(at)
    body = texts(at)
    assert "Results on the test set" in body
    metrics = {m.label: m.value for m in at.metric}
    assert 0.0 <= float(metrics["Test AUC"]) <= 1.0
    assert float(metrics["AUC on new patients"]) > 0
    assert len(at.get("plotly_chart")) >= 4  # preview, curves, confusion matrix, examples
    assert at.session_state["training.user_run"] is job.result, "metrics and saliency chapters can use it"
    # pressing Train again with the same settings reuses the finished run instantly
    at.button(key="training.train").click().run()
    assert at.session_state["training.job"] is job


def test_impossible_settings_are_explained_not_run():
    at = run_page(PAGE, query={"train.init": "pretrained", "train.width": "16"})
    assert_no_exception(at)
    assert any("width 8" in e.value for e in at.error)
    assert not any(b.key == "training.train" for b in at.button)


def zip_of_classes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for cls, value in (("benign", 60), ("malignant", 190)):
            for i in range(12):
                png = io.BytesIO()
                Image.fromarray(np.full((20, 20), value + i, np.uint8)).save(png, format="PNG")
                archive.writestr(f"{cls}/{i}.png", png.getvalue())
    return buffer.getvalue()


def test_own_data_upload_good_and_bad():
    at = run_page(PAGE)
    uploader = at.get("file_uploader")[0]
    uploader.upload("not-a-dataset.zip", b"hello", "application/zip").run()
    assert_no_exception(at)
    assert any("not a .zip" in e.value for e in at.error)
    at.get("file_uploader")[0].upload("lesions.zip", zip_of_classes(), "application/zip").run()
    assert_no_exception(at)
    assert any("24 images" in s.value for s in at.success)
    at.toggle(key="training.use_own").set_value(True).run()
    assert_no_exception(at)


EXTVAL_TINY = {"extval.num_images": "500", "extval.num_epochs": "1", "extval.b_images": "300"}
ENSEMBLE_TINY = {"ensemble.num_models": "2", "ensemble.num_images": "500", "ensemble.num_epochs": "1",
                 "ensemble.width": "4"}  # fmt: skip


def wait_for(jobs, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(job.finished for job in jobs):
            return
        time.sleep(0.2)
    raise AssertionError("training did not finish")


def test_validation_labs_render_with_their_controls():
    at = run_page(PAGE)
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.number_input) if w.key}
    assert {"extval.b_noise", "extval.b_scale", "extval.b_prevalence", "ensemble.num_models"} <= keys
    assert {"training.extval.train", "training.ensemble.train"} <= {b.key for b in at.button}
    body = texts(at)
    assert "site A" in body and "test-time augmentation" in body.lower()


def test_external_validation_trains_once_and_scores_both_sites():
    at = run_page(PAGE, query=EXTVAL_TINY)
    at.button(key="training.extval.train").click().run()
    assert_no_exception(at)
    job = at.session_state["training.extval.job"]
    wait_for([job])
    assert job.state == "done", job.error
    at.run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert 0.0 <= float(metrics["Internal AUC (site A)"]) <= 1.0
    assert 0.0 <= float(metrics["External AUC (site B)"]) <= 1.0
    body = texts(at)
    assert "AUC" in body and "site B" in body and "Calibration" in body
    charts = len(at.get("plotly_chart"))
    # a site-B control answers without retraining: the same job, new numbers
    at.slider(key="extval.b_prevalence").set_value(0.1).run()
    assert_no_exception(at)
    assert at.session_state["training.extval.job"] is job
    assert "prevalence differs" in texts(at)
    assert len(at.get("plotly_chart")) == charts


def test_ensemble_trains_each_member_and_draws_the_results():
    at = run_page(PAGE, query=ENSEMBLE_TINY)
    at.button(key="training.ensemble.train").click().run()
    assert_no_exception(at)
    jobs = at.session_state["training.ensemble.jobs"]
    assert len(jobs) == 2
    wait_for(jobs)
    assert all(job.state == "done" for job in jobs), [job.error for job in jobs]
    at.run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert 0.0 <= float(metrics["Ensemble of 2"]) <= 1.0
    assert "Model 1 with TTA" in metrics
    body = texts(at)
    assert "TTA changes model 1's AUC" in body
    assert "Wrong calls" in body or "called every test image right" in body


def test_schedule_loss_and_prevalence_controls_render_and_a_short_run_finishes():
    at = run_page(PAGE)
    assert_no_exception(at)
    keys = {w.key for w in at.select_slider if w.key}
    assert {"train.prevalence", "train.warmup_epochs"} <= keys
    assert at.button_group(key="train.lr_schedule").value == "constant"
    assert at.button_group(key="train.loss").value == "cross_entropy"
    query = {**TINY, "train.lr_schedule": "cosine", "train.warmup_epochs": "1.0", "train.loss": "weighted",
             "train.prevalence": "0.2"}  # fmt: skip
    at = run_page(PAGE, query=query)
    at.button(key="training.train").click().run()
    job = wait_for_job(at, timeout=1200)  # generous: a shared, busy CPU
    assert job.state == "done", job.error
    at.run()
    assert_no_exception(at)
    rates = job.result.history.learning_rates
    assert rates[0] < rates[len(rates) // 2] and rates[-1] < rates[len(rates) // 2]  # warm-up, then decay
    assert job.result.sizes["train"]["positives"] < 0.3 * job.result.sizes["train"]["images"]
    metrics = {m.label: m.value for m in at.metric}
    point = job.result.test_labels, job.result.test_probs
    assert metrics["Sensitivity"] == f"{(point[1][point[0] == 1, 1] >= 0.5).mean():.1%}"
    assert "Mean predicted probability" in metrics
    assert len(at.get("plotly_chart")) >= 6  # preview, curves, learning rate, confusion, reliability, examples


def test_too_few_positives_are_explained_not_run():
    at = run_page(PAGE, query={"train.num_images": "500", "train.prevalence": "0.02"})
    assert_no_exception(at)
    assert any("at least 20 of each class" in e.value for e in at.error)
    assert not any(b.key == "training.train" for b in at.button)
