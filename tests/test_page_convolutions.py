"""The convolution chapter in AppTest: every lab's controls move, and what they should change, does.

Expected numbers come from independent computations (SciPy filtering, the output-size formula by
hand, the receptive-field recurrences by hand), not from the page's own output.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.ndimage
import torch

from primer import conv, i18n
from primer.dicom import DicomError
from tests.conftest import assert_no_exception, run_page

PAGE = "views/convolutions.py"


def page(**state):
    """The page with some lab fields preset (through session state: bound widgets put their
    translated labels, not their option ids, in the URL)."""
    at = run_page(PAGE, state=state)
    assert_no_exception(at)
    return at


def text(at) -> str:
    """Everything the page wrote as prose, captions, headers and formulas."""
    parts = [e.value for kind in ("markdown", "caption", "header", "subheader", "latex", "error", "info", "warning")
             for e in getattr(at, kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def figure_titles(at) -> str:
    return "\n".join(chart.proto.spec for chart in at.get("plotly_chart"))


@pytest.fixture(scope="module")
def default_page():
    return page()


def test_every_lab_is_on_the_page(default_page):
    headers = [h.value for h in default_page.header]
    assert [h.split(" · ")[0] for h in headers[:6]] == [f"Lab {i}" for i in range(1, 7)]
    assert len(default_page.get("plotly_chart")) >= 13
    assert "Check your understanding" in headers


# ---- lab 1 ------------------------------------------------------------------------------------


def test_kernel_and_image_change_the_feature_map():
    at = page()
    at.selectbox(key="kernel.image").set_value("ct_small").run()
    at.selectbox(key="kernel.kernel").set_value("gaussian_5x5").run()
    assert_no_exception(at)
    specs = figure_titles(at)
    assert "Input (128×128)" in specs and "Weights (5×5)" in specs
    assert "The weights add up to 1." in text(at)
    # the map's extremes, computed independently with SciPy, are the ones the sentence reports
    image = conv.sample_image("ct_small").astype(np.float64)
    kernel = conv.KERNELS["gaussian_5x5"].weights.astype(np.float64)
    expected = scipy.ndimage.correlate(image, kernel, mode="constant")
    assert f"runs from {expected.min():.3g} to {expected.max():.3g}" in text(at)

    at.segmented_control(key="kernel.border").set_value("valid").run()
    assert "Feature map (124×124)" in figure_titles(at)


def test_custom_kernel_text_and_its_errors():
    at = page(**{"kernel.kernel": "custom", "kernel.custom": "1,1,1,1,1,1,1,1,1"})
    assert "The weights add up to 9." in text(at)
    assert at.get("arrow_data_frame") or at.data_editor, "the editable grid is shown"
    at.text_input(key="kernel.custom").set_value("1,2,3").run()
    assert_no_exception(at)
    assert "has 3 numbers" in text(at)
    assert "identity kernel" in text(at)
    assert len([h for h in at.header if h.value.startswith("Lab")]) == 6, "the other labs keep working"
    at.text_input(key="kernel.custom").set_value("0,0,0,0,2,0,0,0,0").run()
    assert "The weights add up to 2." in text(at)


def test_typing_a_kernel_switches_to_your_own():
    at = page()
    at.text_input(key="kernel.custom").set_value("0,-1,0,-1,5,-1,0,-1,0").run()
    assert at.session_state["kernel.kernel"] == "custom"
    assert "The weights add up to 1." in text(at)


def test_edit_a_copy_and_resize_the_grid():
    at = page(**{"kernel.kernel": "sobel_y"})
    at.button[[b.label for b in at.button].index("Edit a copy of this kernel")].click().run()
    assert at.session_state["kernel.kernel"] == "custom"
    np.testing.assert_array_equal(
        conv.parse_kernel_text(at.session_state["kernel.custom"]), conv.KERNELS["sobel_y"].weights
    )
    at.button[[b.label for b in at.button].index("Make it 5×5")].click().run()
    assert conv.parse_kernel_text(at.session_state["kernel.custom"]).shape == (5, 5)
    assert "Weights (5×5)" in figure_titles(at)


def test_upload_choice_without_a_file_and_with_a_decoded_or_broken_one():
    at = page(**{"kernel.image": "upload"})
    assert "No file yet" in text(at)
    at = run_page(
        PAGE,
        state={
            "kernel.image": "upload",
            "convolutions.upload": {"image": np.full((40, 30), 0.5, np.float32), "spacing": 1.0, "name": "a.dcm"},
        },
    )
    assert_no_exception(at)
    assert any("Showing: a.dcm" in t.value for t in at.text)
    assert "Input (40×30)" in figure_titles(at)
    at = run_page(PAGE, state={"kernel.image": "upload", "convolutions.upload": {"error": DicomError("not_dicom")}})
    assert_no_exception(at)
    assert "not a DICOM file" in text(at)


# ---- lab 2 ------------------------------------------------------------------------------------


def test_stride_padding_dilation_formula_and_impossible_settings():
    at = page()
    assert text(at).count("= 5") >= 1  # ⌊(7 − 2 − 1)/1⌋ + 1 = 5
    at.slider(key="stride.stride").set_value(2).run()
    at.slider(key="stride.padding").set_value(1).run()
    latex = "\n".join(e.value for e in at.latex).strip("$\n ")
    assert latex.endswith("= 4")  # ⌊(7 + 2 − 2 − 1)/2⌋ + 1 = 4, by hand
    assert "Output 4×4" in figure_titles(at)

    at.slider(key="stride.size").set_value(5).run()
    at.slider(key="stride.kernel").set_value(5).run()
    at.slider(key="stride.padding").set_value(0).run()
    at.slider(key="stride.dilation").set_value(3).run()
    assert_no_exception(at)
    message = "\n".join(e.value for e in at.error)
    assert "13 cells" in message and "5 + 2·0 = 5" in message
    assert "does not fit" in figure_titles(at)


def test_output_cell_is_clamped_when_the_output_shrinks():
    at = page(**{"stride.out_row": 4, "stride.out_col": 4})
    at.slider(key="stride.stride").set_value(3).run()  # 7, k3, s3 → 2×2
    assert_no_exception(at)
    assert at.number_input(key="stride.out_row").value == 1


# ---- lab 3 ------------------------------------------------------------------------------------


def test_dot_product_matches_the_feature_map_and_jumps_to_the_strongest_response():
    at = page(**{"kernel.image": "ct_small", "kernel.kernel": "sobel_x"})
    at.number_input(key="dotprod.row").set_value(40).run()
    at.number_input(key="dotprod.col").set_value(70).run()
    image = conv.sample_image("ct_small").astype(np.float64)
    expected = scipy.ndimage.correlate(image, conv.KERNELS["sobel_x"].weights.astype(float), mode="constant")
    assert f"row 40, column 70: {expected[40, 70]:.4f}" in text(at)
    assert f"The sum, {expected[40, 70]:.4f}," in text(at)

    at.button[[b.label for b in at.button].index("Strongest positive response")].click().run()
    row, col = np.unravel_index(np.argmax(expected), expected.shape)
    assert (at.number_input(key="dotprod.row").value, at.number_input(key="dotprod.col").value) == (row, col)


# ---- lab 4 ------------------------------------------------------------------------------------


def test_activation_pooling_and_batch_norm_controls():
    at = page(**{"kernel.image": "ct_small"})
    at.segmented_control(key="actpool.activation").set_value("sigmoid").run()
    at.select_slider(key="actpool.gain").set_value(16.0).run()
    assert_no_exception(at)
    assert "0% of the map's pixels come out as exactly zero" in text(at)  # sigmoid never outputs 0
    at.segmented_control(key="actpool.activation").set_value("relu").run()
    assert "0% of the map's pixels" not in text(at).replace("100% of", "")

    at.slider(key="actpool.pool_size").set_value(3).run()
    at.slider(key="actpool.pool_stride").set_value(3).run()
    assert "After pooling (42×42)" in figure_titles(at)  # ⌊(128 − 3)/3⌋ + 1 = 42
    assert "⌊(128 + 2·0 − 1·(3−1) − 1)/3⌋ + 1 = 42" in text(at)

    at.slider(key="actpool.batch").set_value(7).run()
    assert "over all 7 images" in text(at)
    table = next(d.value for d in at.dataframe if "mean after" in d.value.columns)
    assert np.allclose(table["mean after"].to_numpy(dtype=float), 0, atol=1e-5)
    assert np.allclose(table["variance after"].to_numpy(dtype=float), 1, atol=1e-3)


# ---- lab 5 ------------------------------------------------------------------------------------


def test_receptive_field_stack_text_and_errors():
    at = page(**{"kernel.image": "ct_small"})
    at.text_input(key="rf.layers").set_value("c3,c3,c3").run()
    assert "After 3 layers one pixel sees 7×7 pixels" in text(at)  # 3 → 5 → 7 by hand
    assert "≈ 5 mm" in text(at)  # 7 px × 0.66 mm
    at.text_input(key="rf.layers").set_value("c3,p2,c3").run()
    assert "sees 8×8 pixels" in text(at) and "2 input pixels apart" in text(at)  # 3, 4, 4 + 2·2 = 8
    at.slider(key="rf.across").set_value(20).run()
    assert_no_exception(at)
    at.text_input(key="rf.layers").set_value("c3,dense").run()
    assert_no_exception(at)
    assert "“dense” is not a layer" in text(at)


# ---- lab 6 ------------------------------------------------------------------------------------


class _TrainedRun:
    """A stand-in for the training lab's last run (primer.train.RunResult): the default model's
    layout with first-layer weights far from their seeded start."""

    def __init__(self):
        from primer.default_model import load_default

        default = load_default()
        self.lab, self.num_classes = default.lab, 2
        self._model = copy.deepcopy(default.model)  # the shipped model is shared: never edit it
        start = conv.starting_filters(self.lab, 2)  # (C, 3, 3)
        with torch.no_grad():
            weight = conv.first_conv(self._model).weight  # (C, 1, 3, 3)
            self.expected_r = []
            for i, kernel in enumerate(conv.KERNELS[n].weights for n in ("sobel_x", "sobel_y") * 4):
                weight[i, 0] = torch.from_numpy(np.array(kernel))
                self.expected_r.append(np.corrcoef(np.array(kernel).ravel(), start[i].ravel())[0, 1])

    def model(self):
        return self._model


def test_learned_filters_of_your_own_run_that_moved_far():
    run = _TrainedRun()
    at = page(**{"kernel.image": "ct_small", "training.user_run": run})
    at.segmented_control(key="filters.model").set_value("user").run()
    assert_no_exception(at)
    says = text(at)
    assert "learned shapes of its own" in says and "hard to tell" not in says
    assert f"only r = {min(run.expected_r):.2f}" in says  # Pearson r by NumPy, against the seeded start
    assert "closest textbook kernel is Sobel x" in says or "closest textbook kernel is Sobel y" in says


def test_a_bad_upload_gets_the_imaging_chapters_message():
    """The convolution lab shows the DICOM reader's errors in the viewer's words (one set of
    messages, in both languages), never its own copies."""
    at = page(**{"kernel.image": "upload"})
    at.file_uploader(key="kernel.file").set_value(("scan.dcm", b"hello, not a dicom", "application/dicom")).run()
    assert_no_exception(at)
    expected = i18n.translate("imaging.error.not_dicom", "en")
    assert [e.value for e in at.error] == [expected]
    assert not any(
        key.startswith("convolutions.upload.error.") and key != "convolutions.upload.error.image_too_small"
        for key in i18n.catalog()
    )


def test_learned_filters_resolution_and_stage():
    at = page(**{"kernel.image": "ct_small"})
    assert "Feature maps of the chosen image at 64×64" in text(at)
    assert "training moved them by only" in text(at)
    at.segmented_control(key="filters.resolution").set_value("full").run()
    at.segmented_control(key="filters.stage").set_value("relu").run()
    assert_no_exception(at)
    assert "at 128×128, after batch norm and ReLU" in text(at)


# ---- presets, quiz, languages, presentation --------------------------------------------------


def test_a_preset_sets_its_lab():
    at = page()
    at.selectbox(key="presetpick.rf").set_value("alexnet_like")
    at.button(key="presetapply.rf").click().run()
    assert_no_exception(at)
    assert at.session_state["rf.layers"] == "c11s4,p3s2,c5,p3s2,c3,c3,c3,p3s2"
    assert "sees 195×195 pixels" in text(at)


def test_numeric_quiz_question_is_graded():
    at = page()
    at.number_input(key="quiz.convolutions.output_size").set_value(32).run()
    at.button(key="quiz.convolutions.output_size.check").click().run()
    assert at.session_state["progress"].answers["convolutions"]["output_size"] is True


def test_chinese_and_presentation_mode():
    at = run_page(PAGE, query={"lang": "中文"})
    assert_no_exception(at)
    assert at.header[0].value.startswith("实验 1")
    assert "特征图" in figure_titles(at)
    at = run_page(PAGE, state={"instructor": True, "present": True})
    assert_no_exception(at)
    assert not [h for h in at.header if "understanding" in h.value]
