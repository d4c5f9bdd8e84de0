"""The architectures page in AppTest: every lab's controls move what they should.

Training runs are replaced by small finished jobs placed in the session (what the page keeps
after a real run), so the result views can be driven without waiting for training."""

import base64
import json
import re
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import models
from app.widgets import arch_generative, arch_tasks
from primer import generative as gen
from primer import tasks
from primer.architectures import parameter_count
from primer.generative import DaeLab, VaeLab
from primer.jobs import Job
from primer.tasks import FourTaskLab
from primer.train import EpochRecord, TrainLab
from tests.conftest import assert_no_exception, run_page, wait_until_done

PAGE = "views/architectures.py"
torch.set_num_threads(1)


def done(key: str, epochs: list, result: dict) -> Job:
    """A finished work job as the shared training queue leaves it."""
    return Job(key=f"work:{key}", kind="work", state="done", epochs=epochs, progress=1.0, result=result)


@pytest.fixture(scope="module")
def finished_jobs():
    """Finished detector, U-Net, autoencoder and VAE jobs for the default settings, trained
    for an epoch or two on a little data (the views only need real models)."""
    train, test = tasks.task_data(tasks.task_config(n=120))
    config = tasks.TaskTrainConfig(num_epochs=2, width=4, detector_width=8)
    det, det_history = tasks.train_detector(train, test, config)
    lab, dilated_lab = FourTaskLab(), FourTaskLab(segmenter="dilated", seg_loss="dice")
    seg_jobs = {}
    for seg_lab, epochs in ((lab, 2), (dilated_lab, 1)):
        how = {"segmenter": seg_lab.segmenter, "skips": True, "loss": seg_lab.seg_loss}
        model, history = tasks.train_segmenter(
            train, test, replace(config, num_epochs=epochs), segmenter=how["segmenter"], loss=how["loss"]
        )
        result = {"model": model, "dice": history[-1].score, "report": tasks.segmentation_report(model, test)}
        result.update(receptive_field=tasks.segmenter_receptive_field(model), settings=how)
        seg_jobs[arch_tasks.seg_key(seg_lab)] = done(arch_tasks.seg_key(seg_lab), history, result)
    task_jobs = {
        "det": done(arch_tasks.det_key(lab), det_history, {"model": det, "pr": tasks.detection_pr(det, test)}),
        "seg": seg_jobs[arch_tasks.seg_key(lab)],
    }
    _, ct_test = gen.ct_patches()
    dae = models.build("dae_small", seed=0).eval()
    dae_job = done(
        arch_generative.dae_key(DaeLab()),
        [tasks.TaskEpoch(1, 0.1, 20.0, 1.0)],
        {"model": dae, "codes": gen.code_pca(dae, gen.CtPatches(ct_test.clean[:48], ct_test.source[:48]))},
    )
    patches, _ = gen.lesion_patches(n=100)
    vae, run = gen.train_vae(patches, gen.VaeConfig(num_epochs=1))
    vae_job = done(arch_generative.vae_key(VaeLab()), run.history, {"model": vae, "run": run})
    return {"arch.tasks": task_jobs, arch_tasks.SEG_RUNS: seg_jobs, "arch.dae": dae_job, "arch.vae": vae_job}


@pytest.fixture(scope="module")
def page():
    at = run_page(PAGE, timeout=300)
    assert_no_exception(at)
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def figure_text(at, key: str) -> str:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.dumps(json.loads(chart.proto.spec), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------


def test_page_opens_with_every_lab(page):
    assert page.title[0].value == "Architectures"
    headers = [h.value for h in page.header]
    assert any("Building blocks" in h for h in headers) and any("Generative" in h for h in headers)
    assert len(page.get("graphviz_chart")) == 2
    assert headers[-1] == "Check your understanding"
    for key in (
        "blocks.model",
        "race.plain_cnn",
        "degrade.blocks_per_stage",
        "fourtask.contrast",
        "dae.noise",
        "vae.latent_dim",
        "gan.g_learning_rate",
    ):
        assert page.session_state[key] is not None


def test_choosing_a_design_changes_its_numbers(page):
    expected = parameter_count(models.build("resnet_small", width=8))
    assert metric(page, "Parameters") == f"{expected:,}"
    page.selectbox(key="blocks.model").set_value("separable_cnn").run()
    assert_no_exception(page)
    assert metric(page, "Parameters") == f"{parameter_count(models.build('separable_cnn', width=8)):,}"
    page.selectbox(key="blocks.model").set_value("se_resnet").run()
    assert metric(page, "Receptive field") == "whole image"
    page.select_slider(key="blocks.width").set_value(16).run()
    assert metric(page, "Parameters") == f"{parameter_count(models.build('se_resnet', width=16)):,}"
    flops_64 = metric(page, "FLOPs per image")
    page.segmented_control(key="blocks.input_size").set_value(32).run()
    assert metric(page, "Parameters") == f"{parameter_count(models.build('se_resnet', width=16)):,}"
    assert metric(page, "FLOPs per image") != flops_64
    assert "32 px image" in captions(page)


def test_race_choices_and_a_finished_race(page):
    assert "3 designs will train" in captions(page)
    page.checkbox(key="race.dense_cnn").check().run()
    assert "4 designs will train" in captions(page)
    for name in ("plain_cnn", "resnet_small", "dense_cnn", "separable_cnn"):
        page.checkbox(key=f"race.{name}").uncheck()
    page.run()
    assert any("Tick at least one" in i.value for i in page.info)
    page.checkbox(key="race.plain_cnn").check().run()

    def finished(model, auc):
        epochs = [EpochRecord(e, 0.6, 0.7, 0.5, 0.8, auc - 0.1 / e, 2.0 * e) for e in (1, 2)]
        return SimpleNamespace(
            key=model,
            lab=TrainLab(model=model),
            epochs=epochs,
            state="done",
            finished=True,
            progress=1.0,
            result=SimpleNamespace(seconds=4.0, test_auc=auc, test_accuracy=0.9),
        )

    at = run_page(
        PAGE, state={"arch.race": [finished("plain_cnn", 0.93), finished("separable_cnn", 0.95)]}, timeout=300
    )
    assert_no_exception(at)
    table = next(d.value for d in at.dataframe if "Test AUC" in d.value.columns)
    assert list(table["Test AUC"]) == [0.95, 0.93]  # best first
    assert list(table["Parameters"]) == [
        parameter_count(models.build(n, width=8)) for n in ("separable_cnn", "plain_cnn")
    ]


def test_depth_slider_redraws_the_gradient_picture(page):
    assert "25 conv layers" in captions(page)
    page.slider(key="degrade.blocks_per_stage").set_value(1).run()
    assert_no_exception(page)
    assert "7 conv layers" in captions(page)


def test_four_tasks_before_training_show_the_classifier_and_mask_rcnn(page):
    assert "(3 true lesions" in captions(page)
    assert re.search(r"Classification: P\(lesion\) = [01]\.\d\d", figure_text(page, "tasks.four"))
    page.number_input(key="fourtask.image").set_value(249).run()
    assert_no_exception(page)
    assert "(0 true lesions" in captions(page)
    assert "Mask R-CNN (two-stage)" in figure_text(page, "tasks.instances")
    page.number_input(key="fourtask.image").set_value(0).run()


def test_four_tasks_after_training_show_nms_steps_and_the_unet(finished_jobs):
    at = run_page(PAGE, state=finished_jobs, timeout=300)
    assert_no_exception(at)
    four = figure_text(at, "tasks.four")
    assert "Detection:" in four and "Semantic segmentation: Dice" in four and "Instance segmentation:" in four
    assert "Test-set Dice" in captions(at)

    def nms_steps() -> int:
        tables = [d.value for d in at.dataframe if "Boxes removed" in d.value.columns]
        return len(tables[0]) if tables else 0

    at.slider(key="fourtask.score_threshold").set_value(0.05).run()
    at.slider(key="fourtask.nms_iou").set_value(0.1).run()
    strict = nms_steps()
    at.slider(key="fourtask.nms_iou").set_value(0.9).run()
    assert_no_exception(at)
    loose = nms_steps()
    assert loose >= strict >= 1, "a higher IoU threshold removes fewer boxes, so NMS takes more steps"
    assert "more than IoU 0.90" in captions(at)
    at.toggle(key="fourtask.skips").set_value(False).run()
    assert_no_exception(at)
    assert "Semantic segmentation: Dice" not in figure_text(at, "tasks.four"), "other settings need training"


def test_job_keys_follow_what_each_training_reads():
    base = FourTaskLab()
    keys = {
        arch_tasks.seg_key(FourTaskLab(segmenter=s, seg_loss=x)) for s in ("unet", "dilated") for x in ("ce", "dice")
    }
    assert len(keys) == 4 and arch_tasks.seg_key(base) not in keys
    assert arch_tasks.seg_key(FourTaskLab(skips=False)) != arch_tasks.seg_key(base)
    dilated = FourTaskLab(segmenter="dilated")
    assert arch_tasks.seg_key(dilated) == arch_tasks.seg_key(replace(dilated, skips=False)), "no skips to toggle"
    assert arch_tasks.det_key(FourTaskLab(segmenter="dilated", seg_loss="ce", proposals=50)) == arch_tasks.det_key(base)


def test_one_stage_vs_two_stage_panel_needs_no_training_for_the_two_stage_side(page):
    stages = figure_text(page, "tasks.stages")
    assert "RPN: best 10 of" in stages and "Stage 2:" in stages and "One-stage: cells" in stages
    assert float(metric(page, "Two-stage (shipped Mask R-CNN): AP@0.5")) >= 0.8
    assert metric(page, "One-stage (trained here): AP@0.5") == "—"
    text = "\n".join(m.value for m in page.markdown)
    assert "scores 3 anchors (8 px · 12 px · 16 px" in text and "768 anchors per image" in text
    assert "no feature pyramid" in text
    page.slider(key="fourtask.proposals").set_value(3).run()
    assert_no_exception(page)
    assert "RPN: best 3 of" in figure_text(page, "tasks.stages")
    page.slider(key="fourtask.proposals").set_value(10).run()


def test_trained_views_compare_both_detectors_and_the_segmenter_runs(finished_jobs):
    at = run_page(PAGE, state=finished_jobs, timeout=300)
    assert_no_exception(at)
    assert "After NMS:" in figure_text(at, "tasks.stages")
    assert 0.0 <= float(metric(at, "One-stage (trained here): AP@0.5")) <= 1.0
    assert "Two-stage minus one-stage:" in captions(at)
    table = next(d.value for d in at.dataframe if "Smallest lesions" in d.value.columns)
    assert len(table) == 2 and set(table["Segmenter"]) == {"U-Net", "dilated"}
    assert 41 in set(table["Receptive field (px)"])
    assert "Receptive field of one output pixel" in captions(at)
    at.segmented_control(key="fourtask.segmenter").set_value("dilated").run()
    assert_no_exception(at)
    assert at.toggle(key="fourtask.skips").disabled
    at.segmented_control(key="fourtask.seg_loss").set_value("dice").run()
    assert_no_exception(at)
    assert "Semantic segmentation: Dice" in figure_text(at, "tasks.four"), "the finished dilated + Dice run is shown"
    assert "dilated segmenter, no pooling" in captions(at)


def test_denoising_and_vae_views(finished_jobs):
    at = run_page(PAGE, state=finished_jobs, timeout=300)
    assert_no_exception(at)
    before = float(re.search(r"Input: ([\d.]+) dB", figure_text(at, "dae.images")).group(1))
    at.slider(key="dae.noise").set_value(0.25).run()
    assert_no_exception(at)
    after = float(re.search(r"Input: ([\d.]+) dB", figure_text(at, "dae.images")).group(1))
    assert after < before - 3, "more noise, lower PSNR of the noisy input"
    assert "Noise σ = 0.25" in captions(at)
    first = figure_text(at, "vae.interp")
    at.number_input(key="vae.start").set_value(3).run()
    assert_no_exception(at)
    assert figure_text(at, "vae.interp") != first
    assert any("latent space decoded" in c.value for c in at.caption)
    assert np.isfinite(after)


def test_denoising_before_training_shows_the_noise_and_the_blur(page):
    def input_psnr() -> str:
        return re.search(r"Input: ([\d.∞]+) dB", figure_text(page, "dae.images")).group(1)

    text = figure_text(page, "dae.images")
    assert "Gaussian blur" in text and "Autoencoder" not in text
    before = float(input_psnr())
    page.slider(key="dae.noise").set_value(0.3).run()
    assert_no_exception(page)
    assert float(input_psnr()) < before - 3
    assert "Noise σ = 0.30" in captions(page)
    page.slider(key="dae.noise").set_value(0.0).run()
    assert input_psnr() == "∞" and "No noise added" in captions(page)
    page.slider(key="dae.noise").set_value(0.15).run()


def test_gan_lab_trains_through_the_queue_and_draws_its_figures():
    """One short epoch (46 generator steps) through the shared training queue."""
    at = run_page(PAGE, query={"gan.num_epochs": "1"}, timeout=300)
    assert_no_exception(at)
    assert "46 generator steps" in captions(at)
    assert any("the curves and the samples update while it trains" in i.value for i in at.info)
    at.button(key="gan.run").click().run()
    assert_no_exception(at)
    job = at.session_state["arch.gan"]
    wait_until_done(job, 240)
    at.run()
    assert_no_exception(at)
    run = job.result["run"]
    assert len(run.steps) == 46 and len(job.epochs) == 1
    for key in ("gan.curves", "gan.samples", "gan.film", "gan.generated", "gan.diversity"):
        assert figure_text(at, key)
    curves = json.loads(next(c for c in at.get("plotly_chart") if "gan.curves" in c.proto.id).proto.spec)
    d_loss = next(trace for trace in curves["data"] if trace.get("name") == "Discriminator loss")
    y = d_loss["y"]  # plotly sends numeric arrays base64-encoded
    values = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]) if isinstance(y, dict) else np.array(y)
    expected = np.convolve([s.d_loss for s in run.steps], np.ones(10) / 10, mode="valid")
    np.testing.assert_allclose(values, expected, rtol=1e-6, err_msg="a 10-step moving mean over every step")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sample diversity (real = 1)"] == f"{run.report.diversity:.2f}"
    assert metrics["Patches with a lesion"] == f"{run.report.lesion_share:.0%}"
    assert "new samples against" in captions(at)


def test_scaling_lab_and_the_accuracy_flops_figure(page):
    from primer import scaling

    assert page.session_state["scale.mode"] == "compound"
    chosen = scaling.scaled_variant("resnet_small", "compound", 1)
    assert f"{chosen.flops / 1e6:.1f} M" in [m.value for m in page.metric if m.label == "FLOPs per image"]
    assert metric(page, "Input") == "37 px"
    frontier = figure_text(page, "frontier.chart")
    assert "not trained yet" in frontier and "No AUC yet" in frontier  # nothing raced: FLOPs only
    page.segmented_control(key="scale.mode").set_value("resolution").run()
    assert_no_exception(page)
    assert metric(page, "Input") == "37 px" and metric(page, "Blocks per stage") == "2"
    page.slider(key="scale.phi").set_value(4).run()
    assert metric(page, "Input") == "56 px"
    assert "Resolution only" in figure_text(page, "scale.flops_chart")


def test_accuracy_flops_figure_uses_the_race_and_the_scaled_runs():
    from primer import scaling
    from primer.scaling import ScaleLab

    race = [
        SimpleNamespace(
            key="plain_cnn",
            lab=TrainLab(model="plain_cnn"),
            epochs=[EpochRecord(1, 0.6, 0.7, 0.5, 0.8, 0.875, 2.0)],
            state="done",
            finished=True,
            progress=1.0,
            result=SimpleNamespace(seconds=2.0, test_auc=0.87, test_accuracy=0.8),
        )
    ]
    lab = ScaleLab(mode="width", phi=1)
    variant = scaling.scaled_variant(lab.base, lab.mode, lab.phi)
    run = scaling.ScaleRun(lab, variant, (0.5, 0.625), 0.6, 3.0)
    at = run_page(PAGE, state={"arch.race": race, "arch.scale": [done(scaling.run_key(lab), [], run)]}, timeout=300)
    assert_no_exception(at)
    chart = json.loads(next(c for c in at.get("plotly_chart") if "frontier.chart" in c.proto.id).proto.spec)
    aucs = sorted(y for trace in chart["data"] for y in trace.get("y", []) if y)
    assert aucs == [0.625, 0.875]
    assert "Residual, Width only, φ = 1" in json.dumps(chart, ensure_ascii=False)
    assert "Width only, φ = 1 (32 px input): validation AUC 0.625" in captions(at)
