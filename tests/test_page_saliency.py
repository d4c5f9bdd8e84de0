"""The saliency page in AppTest: every lab's controls change what they should.

Expected numbers come from primer.explain run directly on the same images, from the default
model's own outputs, or from counting; the page must show them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from app.ui import USER_RUN_KEY
from primer import explain
from primer.default_model import load_default
from tests.conftest import assert_no_exception, run_page

PAGE = "views/saliency.py"


@pytest.fixture(scope="module")
def default():
    return load_default()


@pytest.fixture(scope="module")
def page():
    at = run_page(PAGE, timeout=300)
    assert_no_exception(at)
    return at


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info])


def charts(at) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def run(widget, at, value):
    widget.set_value(value)
    at.run(timeout=300)
    assert_no_exception(at)


def test_page_opens_with_five_labs_and_the_quiz(page):
    headers = [h.value for h in page.header]
    for title in ("Attribution explorer", "Does it point at the lesion?", "Sanity check by model randomization"):
        assert title in headers
    assert "Shortcut learning" in headers and "Feature space" in headers
    body = texts(page)
    assert "P(lesion) = **" in body and "truth: lesion" in body  # the default case is a true positive
    assert "Switch on 'Score the methods'" in body and "Switch on 'Train both models'" in body
    assert "Each dot is one test image" in body


def test_explorer_facts_match_the_model_and_the_method(page, default):
    ctx = explain.from_default(default)
    image, count = explain.test_image(ctx, "tp", 0)
    assert f"{count} test images of this kind." in texts(page)
    p = explain.probability(default.model, image.x, 1)
    assert f"P(lesion) = **{p:.2f}**" in texts(page)
    run(page.selectbox(key="attrib.method"), page, "integrated_gradients")
    run(page.select_slider(key="attrib.ig_steps"), page, 5)
    _, delta = explain.integrated_gradients(explain.private_copy(default.model), image.x, 1, steps=5)
    assert f"convergence delta {float(delta[0]):+.3f}" in texts(page)
    run(page.select_slider(key="attrib.ig_steps"), page, 200)
    _, delta200 = explain.integrated_gradients(explain.private_copy(default.model), image.x, 1, steps=200)
    assert f"convergence delta {float(delta200[0]):+.3f}" in texts(page)
    assert abs(delta200[0]) < abs(delta[0])


def test_target_class_and_case_kind(page, default):
    ctx = explain.from_default(default)
    run(page.button_group(key="attrib.target"), page, 0)
    image, _ = explain.test_image(ctx, "tp", 0)
    assert f"P(no lesion) = **{explain.probability(default.model, image.x, 0):.2f}**" in texts(page)
    run(page.button_group(key="attrib.target"), page, 1)
    run(page.selectbox(key="attrib.case"), page, "fn")
    missed = explain.case_indices(default.test.y.numpy(), default.test_probs[:, 1], "fn")
    assert f"{len(missed)} test images of this kind." in texts(page)
    run(page.selectbox(key="attrib.case"), page, "tp")


def test_opacity_and_grid(page):
    run(page.selectbox(key="attrib.method"), page, "gradcam")
    run(page.slider(key="attrib.opacity"), page, 0.8)
    overlays = [c for c in charts(page) if len(c["data"]) >= 2 and c["data"][1].get("showscale")]
    assert overlays and overlays[0]["data"][1]["opacity"] == pytest.approx(0.8)
    before = len(page.get("plotly_chart"))
    run(page.checkbox(key="attrib.show_grid"), page, False)
    assert len(page.get("plotly_chart")) == before - 1
    run(page.checkbox(key="attrib.show_grid"), page, True)


def test_hybrid_ct_source(page):
    run(page.button_group(key="attrib.source"), page, "hybrid")
    assert page.number_input(key="attrib.hybrid_seed")
    assert "truth: lesion" in texts(page)
    run(page.slider(key="attrib.hybrid_contrast"), page, 0.0)
    assert "truth: no lesion" in texts(page)
    run(page.button_group(key="attrib.source"), page, "phantom")


def test_uploads_good_and_bad():
    at = run_page(PAGE, timeout=300)
    run(at.checkbox(key="attrib.show_grid"), at, False)
    run(at.button_group(key="attrib.source"), at, "upload")
    assert "Upload one DICOM image" in texts(at)
    at.file_uploader(key="saliency.upload").upload("notes.txt", b"this is not a DICOM file").run(timeout=300)
    assert_no_exception(at)
    assert at.error, "a clear message for a file that is not DICOM"
    assert "P(lesion) = **" not in texts(at)  # no map for a file that is not an image
    data = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    at.file_uploader(key="saliency.upload").set_value(("ct.dcm", data, "application/dicom")).run(timeout=300)
    assert_no_exception(at)
    assert "CT, 128×128 pixels" in texts(at)
    assert "P(lesion) = **" in texts(at)


def test_pointing_lab_scores_every_method(page, default):
    run(page.slider(key="pointing.num_images"), page, 10)
    run(page.toggle(key="pointing.run"), page, True)
    table = page.dataframe[0].value
    assert len(table) == len(explain.METHODS) + 3  # nine methods, two controls, chance
    assert "10 lesion images" in texts(page)
    strict = dict(zip(table.iloc[:, 0], table.iloc[:, 1], strict=True))
    run(page.slider(key="pointing.tolerance"), page, 6)
    lenient = dict(zip(page.dataframe[0].value.iloc[:, 0], page.dataframe[0].value.iloc[:, 1], strict=True))

    def pct(text):
        return int(text.split("%")[0])

    assert all(pct(lenient[k]) >= pct(strict[k]) for k in strict)  # slack can only add hits
    assert any(pct(lenient[k]) > pct(strict[k]) for k in strict)
    # only the lesions the model called: the scored images are the first true positives, and
    # the model-free brightness control scores on them what a direct count gives
    run(page.slider(key="pointing.tolerance"), page, 0)
    run(page.button_group(key="pointing.subset"), page, "detected")
    tp = explain.case_indices(default.test.y.numpy(), default.test_probs[:, 1], "tp")[:10]
    x, masks = default.test.x[tp], default.test.mask[tp].numpy()
    hits = [explain.pointing_hit(m, k) for m, k in zip(explain.control_map(x, "image")[:, 0], masks, strict=True)]
    table = page.dataframe[0].value
    shown = dict(zip(table.iloc[:, 0], table.iloc[:, 1], strict=True))["Control: image brightness (no model)"]
    assert pct(shown) == round(100 * sum(hits) / len(hits))
    run(page.toggle(key="pointing.run"), page, False)
    assert not page.dataframe


def test_sanity_lab_depth(page, default):
    run(page.slider(key="sanity.depth"), page, 0)
    assert "after re-initializing 0 layer(s)" in texts(page)
    layers = explain.cascade_layers(default.model)
    run(page.slider(key="sanity.depth"), page, len(layers))
    assert f"after re-initializing {len(layers)} layer(s)" in texts(page)
    assert "Still correlated above 0.5" in texts(page)


def test_embedding_lab(page, default):
    run(page.number_input(key="embedding.index"), page, 5)
    p = default.test_probs[5, 1]
    assert f"image #5 · truth: {'lesion' if default.test.y[5] == 1 else 'no lesion'} · P(lesion) = {p:.2f}" in texts(
        page
    )
    assert page.number_input(key="embedding.seed").disabled  # PCA draws nothing at random
    run(page.button_group(key="embedding.color"), page, "correct")
    names = {trace.get("name") for c in charts(page) for trace in c["data"]}
    assert {"Right", "Wrong"} <= names
    run(page.button_group(key="embedding.projection"), page, "tsne")
    assert "t-SNE keeps near neighbours together" in texts(page)
    assert not page.number_input(key="embedding.seed").disabled


def test_shortcut_lab_trains_two_models(page):
    run(page.select_slider(key="shortcut.num_images"), page, 600)
    run(page.toggle(key="shortcut.run"), page, True)
    body = texts(page)
    assert "The shortcut model scores AUC" in body
    marked = float(body.split("The shortcut model scores AUC ")[1].split(" ")[0])
    assert marked > 0.9
    bars = next(c for c in charts(page) if c["layout"].get("barmode") == "group")
    assert len(bars["data"]) == 2 and all(len(t["y"]) == 3 for t in bars["data"])
    assert np.isfinite([v for t in bars["data"] for v in t["y"]]).all()


def fake_run(default, *, labels=None):
    """A stand-in for the training lab's RunResult: the fields the saliency page reads."""
    return SimpleNamespace(
        lab=default.lab,
        test_labels=default.test.y.numpy() if labels is None else labels,
        test_probs=default.test_probs,
        classes=default.test.classes,
        model=lambda: copy.deepcopy(default.model).eval(),
    )


def test_the_users_model_is_offered_when_there_is_one(default):
    at = run_page(PAGE, timeout=300)
    assert not any(r.key == "saliency.model" for r in at.radio), "no model choice without a trained run"
    at = run_page(PAGE, timeout=300, state={USER_RUN_KEY: fake_run(default)})
    run(at.radio(key="saliency.model"), at, "mine")
    assert not at.warning and "P(lesion) = **" in texts(at)
    flipped = 1 - default.test.y.numpy()  # a run whose test set this page cannot rebuild
    at = run_page(PAGE, timeout=300, state={USER_RUN_KEY: fake_run(default, labels=flipped)})
    run(at.radio(key="saliency.model"), at, "mine")
    assert at.warning, "the page says it fell back to the default model"
    assert "P(lesion) = **" in texts(at)
