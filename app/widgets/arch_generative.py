"""The generative labs: a denoising autoencoder on real CT patches, and a VAE and a GAN that
learn lesion patches. Core: primer.generative."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import ui
from app.widgets import arch_jobs
from primer import architectures_figures as figs
from primer import generative as gen
from primer.generative import DaeLab, GanLab, VaeLab

DAE, VAE, GAN = "arch.dae", "arch.vae", "arch.gan"


@st.cache_resource(show_spinner=False)
def ct_data() -> tuple[gen.CtPatches, gen.CtPatches]:
    return gen.ct_patches()


@st.cache_resource(show_spinner=False)
def lesions() -> tuple[np.ndarray, np.ndarray]:
    return gen.lesion_patches()


def source_names() -> list[str]:
    return [file for _, file in gen.CT_SOURCES]


def decibels(psnr: float) -> str:
    """PSNR for a title: an identical image (no noise) has an infinite PSNR."""
    return f"{psnr:.1f}" if np.isfinite(psnr) else "∞"


def dae_key(lab: DaeLab) -> str:
    return f"dae:{lab.code_channels}:{lab.seed}"


def start_dae(lab: DaeLab) -> None:
    config = lab.config()

    def work(job):
        train, test = ct_data()
        model, history = gen.train_dae(train, test, config, job.add_epoch, job.should_stop)
        return {"model": model, "history": history, "codes": gen.code_pca(model, test)}

    st.session_state[DAE] = arch_jobs.submit(dae_key(lab), config.num_epochs, work)


@st.fragment  # a control reruns its own lab, not the page
def dae_lab(page) -> None:
    t = page.t
    lab = page.lab(DaeLab)
    lab.presets()
    try:
        train, test = ct_data()
    except Exception as exc:  # the CT examples ship with pydicom-data; without them, say so
        st.error(ui.error_message("architectures", "no_ct", detail=str(exc)))
        return
    cols = st.columns(4, vertical_alignment="bottom")
    with cols[0]:
        lab.slider("noise", "dae.noise", min_value=0.0, max_value=0.3, step=0.01, keep=True)
    with cols[1]:
        lab.number("patch", "dae.patch", min_value=0, max_value=len(test) - 1, step=1, keep=True)
    with cols[2]:
        lab.select_slider("code_channels", "dae.code_channels", options=[1, 2, 4, 8, 16])
    with cols[3]:
        lab.number("seed", "dae.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    st.caption(t("dae.data", train=len(train), test=len(test), files=", ".join(source_names())))
    st.button(
        t("dae.train"), type="primary", icon=":material/play_arrow:", on_click=start_dae, args=(state,), key="dae.run"
    )
    job = st.session_state.get(DAE)
    if job is not None:

        def draw():
            arch_jobs.progress_line(t, job)
            if job.epochs:
                labels = {"loss": t("dae.curve.loss"), "score": t("dae.curve.psnr"), "epoch": t("tasks.curve.epoch")}
                curves = figs.training_curves({t("dae.model"): job.epochs}, labels, job.total_epochs)
                ui.figure(curves, key="dae.curves", height=260)

        with st.expander(t("dae.training"), expanded=not job.finished, icon=":material/monitoring:"):
            arch_jobs.watch("dae", [job], draw)
    trained = job is not None and job.state == "done" and arch_jobs.work_key(job) == dae_key(state)
    model = job.result["model"] if trained else None
    index = int(np.clip(state.patch, 0, len(test) - 1))
    noise_seed = state.seed * 100_003 + index  # one noise draw per patch and seed: the URL fixes it
    result = gen.denoise(model, test.clean[index], state.noise, seed=noise_seed)
    names = ("noisy", "output", "blurred", "clean") if trained else ("noisy", "blurred", "clean")
    titles = [
        t("dae.panel.clean")
        if k == "clean"
        else t(f"dae.panel.{k}", psnr=decibels(result.psnr[k]), ssim=result.ssim[k])
        for k in names
    ]
    images = [figs.rgb(getattr(result, k)) for k in names]
    ui.figure(figs.image_row(images, titles, height=300), key="dae.images")
    blur_gain = result.psnr["blurred"] - result.psnr["noisy"]
    if state.noise == 0:  # the input is the clean patch: only what the code loses is left to see
        st.caption(t("dae.caption_no_noise", psnr=decibels(result.psnr.get("output", np.inf))))
    elif not trained:
        st.caption(t("dae.caption_untrained", sigma=state.noise, blur=blur_gain))
    if not trained:
        if job is None:
            st.info(t("dae.idle"))
        elif job.finished and arch_jobs.work_key(job) != dae_key(state):
            st.caption(t("settings_changed"))
        return
    if state.noise > 0:
        better = result.psnr["output"] - result.psnr["noisy"]
        st.caption(t("dae.caption", sigma=state.noise, gain=better, blur=blur_gain))

    code_map = job.result["codes"]
    noisy = gen.add_noise(test.clean[index], state.noise, noise_seed)
    points = gen.project_codes(model, code_map, np.stack([test.clean[index], noisy]))
    labels = {"pc1": t("dae.pc", n=1, v=code_map.explained[0]), "pc2": t("dae.pc", n=2, v=code_map.explained[1])}
    highlight = {t("dae.point.clean"): points[0], t("dae.point.noisy", sigma=state.noise): points[1]}
    ui.figure(figs.code_scatter(code_map.coords, code_map.source, source_names(), highlight, labels), key="dae.codes")
    distance = float(np.linalg.norm(points[0] - points[1]))
    spread = float(np.linalg.norm(code_map.coords.std(0)))
    st.caption(t("dae.codes_caption", distance=distance, spread=spread))


def vae_key(lab: VaeLab) -> str:
    return f"vae:{lab.latent_dim}:{lab.kl_weight}:{lab.num_epochs}:{lab.seed}"


def start_vae(lab: VaeLab) -> None:
    config = lab.config()

    def work(job):
        patches, _ = lesions()
        model, run = gen.train_vae(patches, config, job.add_epoch, job.should_stop)
        return {"model": model, "run": run}

    st.session_state[VAE] = arch_jobs.submit(vae_key(lab), config.num_epochs, work)


@st.fragment  # a control reruns its own lab, not the page
def vae_lab(page) -> None:
    t = page.t
    lab = page.lab(VaeLab)
    lab.presets()
    patches, shapes = lesions()
    n_test = round(0.2 * len(patches))
    test, test_shapes = patches[-n_test:], shapes[-n_test:]
    rounds, spiky = np.flatnonzero(test_shapes == 0), np.flatnonzero(test_shapes == 1)
    cols = st.columns(4, vertical_alignment="bottom")
    with cols[0]:
        lab.segmented("latent_dim", "vae.latent_dim", options=[2, 8, 16], keep=True)
    with cols[1]:
        lab.select_slider("kl_weight", "vae.kl_weight", options=[0.1, 0.5, 1.0, 2.0, 4.0])
    with cols[2]:
        lab.select_slider("num_epochs", "vae.num_epochs", options=[5, 12, 20, 40])
    with cols[3]:
        lab.number("seed", "vae.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    ui.figure(figs.grey_figure(figs.mosaic(test[np.r_[rounds[:8], spiky[:8]]], 8), height=200), key="vae.real")
    st.caption(t("vae.real_caption", n=len(patches)))
    st.button(
        t("vae.train"), type="primary", icon=":material/play_arrow:", on_click=start_vae, args=(state,), key="vae.run"
    )
    job = st.session_state.get(VAE)
    if job is None:
        st.info(t("vae.idle"))
        return

    def draw():
        arch_jobs.progress_line(t, job)
        if job.latest is not None:
            st.markdown(f"**{t('vae.samples', epoch=len(job.epochs))}**")
            ui.figure(figs.grey_figure(figs.mosaic(job.latest, 8), height=200), key="vae.samples")
            st.caption(t("vae.samples_caption"))

    arch_jobs.watch("vae", [job], draw)
    if job.state != "done" or arch_jobs.work_key(job) != vae_key(state):
        if job.finished and arch_jobs.work_key(job) != vae_key(state):
            st.caption(t("settings_changed"))
        return
    model, run = job.result["model"], job.result["run"]
    shown = sorted({1, 2, 5, len(run.samples) // 2, len(run.samples)} & set(range(1, len(run.samples) + 1)))
    strip = np.stack([run.samples[e - 1][:8] for e in shown]).reshape(-1, gen.LESION_PATCH, gen.LESION_PATCH)
    st.markdown(f"**{t('vae.film')}**")
    ui.figure(figs.grey_figure(figs.mosaic(strip, 8), height=80 * len(shown) + 20), key="vae.film")
    st.caption(t("vae.film_caption", epochs=", ".join(str(e) for e in shown)))

    cols = st.columns(2, vertical_alignment="bottom")
    with cols[0]:
        lab.number("start", "vae.start", min_value=0, max_value=len(rounds) - 1, step=1)
    with cols[1]:
        lab.number("end", "vae.end", min_value=0, max_value=len(spiky) - 1, step=1)
    state = lab.state()
    a, b = rounds[state.start % len(rounds)], spiky[state.end % len(spiky)]
    z, strip = gen.interpolate(model, test[a], test[b], steps=8)
    row = np.concatenate([test[a][None], strip, test[b][None]])
    st.markdown(f"**{t('vae.interpolation')}**")
    ui.figure(figs.grey_figure(figs.mosaic(row, len(row)), height=150), key="vae.interp")
    st.caption(t("vae.interp_caption"))
    means = gen.latent_means(model, test)
    left, right = st.columns(2)
    with left:
        labels = {"z1": t("vae.z", n=1), "z2": t("vae.z", n=2), "path": t("vae.path")}
        ui.figure(
            figs.latent_scatter(means, test_shapes, [t("vae.round"), t("vae.spiculated")], z, labels), key="vae.latent"
        )
        st.caption(t("vae.latent_caption") if state.latent_dim == 2 else t("vae.latent_caption_nd", d=state.latent_dim))
    with right:
        if state.latent_dim == 2:
            ui.figure(
                figs.grey_figure(
                    figs.mosaic(gen.latent_grid(model).reshape(-1, gen.LESION_PATCH, gen.LESION_PATCH), 9, gap=1),
                    height=380,
                ),
                key="vae.map",
            )
            st.caption(t("vae.map_caption"))
        else:
            random_z = np.random.default_rng(state.seed).standard_normal((16, state.latent_dim))
            ui.figure(figs.grey_figure(figs.mosaic(gen.decode(model, random_z), 4), height=380), key="vae.random")
            st.caption(t("vae.random_caption"))


def gan_key(lab: GanLab) -> str:
    return f"gan:{lab.g_learning_rate}:{lab.d_learning_rate}:{lab.d_steps}:{lab.latent_dim}:{lab.num_epochs}:{lab.seed}"


def start_gan(lab: GanLab) -> None:
    config = lab.config()

    def work(job):
        patches, _ = lesions()
        total = gen.gan_rounds(len(patches), config) * config.num_epochs
        live = {"steps": [], "picture": None, "picture_step": 0, "total_steps": total}

        def on_step(record, picture):
            # New containers each time: the page reads `job.latest` from another thread.
            update = {**live, "steps": [*live["steps"], record]}
            if picture is not None:
                update.update(picture=picture, picture_step=record.step)
            live.update(update)
            job.latest = update
            job.progress = min(1.0, record.step / total)

        def on_epoch(record, _picture):
            job.add_epoch(record)
            job.progress = min(1.0, live["steps"][-1].step / total) if live["steps"] else job.progress

        model, run = gen.train_gan(patches, config, on_step, on_epoch, job.should_stop)
        return {"model": model, "run": run}

    st.session_state[GAN] = arch_jobs.submit(gan_key(lab), config.num_epochs, work)


def rate(value: float) -> str:
    return f"{value:g}"


@st.fragment  # a control reruns its own lab, not the page
def gan_lab(page) -> None:
    t = page.t
    lab = page.lab(GanLab)
    lab.presets()
    patches, _ = lesions()
    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.select_slider("g_learning_rate", "gan.g_learning_rate", options=GAN_G_RATES, format_func=rate)
    with cols[1]:
        lab.select_slider("d_learning_rate", "gan.d_learning_rate", options=GAN_D_RATES, format_func=rate)
    with cols[2]:
        lab.segmented("d_steps", "gan.d_steps", options=[1, 2, 3])
    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.segmented("latent_dim", "gan.latent_dim", options=[2, 8, 16, 32])
    with cols[1]:
        lab.select_slider("num_epochs", "gan.num_epochs", options=[1, 2, 5, 8, 12])
    with cols[2]:
        lab.number("seed", "gan.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    config = state.config()
    steps = gen.gan_rounds(len(patches), config) * config.num_epochs
    st.caption(t("gan.plan", steps=steps, ratio=state.g_learning_rate / state.d_learning_rate, d_steps=state.d_steps))
    st.button(
        t("gan.train"), type="primary", icon=":material/play_arrow:", on_click=start_gan, args=(state,), key="gan.run"
    )
    job = st.session_state.get(GAN)
    if job is None:
        st.info(t("gan.idle"))
        return
    curve_labels = {
        "losses": t("gan.curve.losses"),
        "probabilities": t("gan.curve.probabilities"),
        "d_loss": t("gan.curve.d_loss"),
        "g_loss": t("gan.curve.g_loss"),
        "d_real": t("gan.curve.d_real"),
        "d_fake": t("gan.curve.d_fake"),
        "step": t("gan.curve.step"),
    }

    def draw():
        arch_jobs.progress_line(t, job)
        live = job.latest
        if job.state == "done" and isinstance(job.result, dict):
            run = job.result["run"]
            live = {
                "steps": run.steps,
                "picture": run.samples[-1][1],
                "picture_step": run.samples[-1][0],
                "total_steps": len(run.steps),
            }
        if not live or not live["steps"]:
            return
        ui.figure(figs.gan_curves(live["steps"], curve_labels, live["total_steps"]), key="gan.curves")
        st.caption(t("gan.curves_caption"))
        if live["picture"] is not None:
            st.markdown(f"**{t('gan.samples', step=live['picture_step'])}**")
            ui.figure(figs.grey_figure(figs.mosaic(live["picture"], 16), height=140), key="gan.samples")
            st.caption(t("gan.samples_caption"))

    arch_jobs.watch("gan", [job], draw)
    if job.state != "done" or arch_jobs.work_key(job) != gan_key(state):
        if job.finished and arch_jobs.work_key(job) != gan_key(state):
            st.caption(t("settings_changed"))
        return
    run = job.result["run"]
    shown = [run.samples[i] for i in sorted({0, 1, len(run.samples) // 4, len(run.samples) // 2, len(run.samples) - 1})]
    strip = np.stack([picture[:16] for _, picture in shown]).reshape(-1, gen.LESION_PATCH, gen.LESION_PATCH)
    st.markdown(f"**{t('gan.film')}**")
    ui.figure(figs.grey_figure(figs.mosaic(strip, 16), height=50 * len(shown) + 20), key="gan.film")
    st.caption(t("gan.film_caption", steps=", ".join(str(step) for step, _ in shown)))

    report = run.report
    st.markdown(f"**{t('gan.modes')}**")
    cols = st.columns(3)
    cols[0].metric(t("gan.metric.diversity"), f"{report.diversity:.2f}", help=t("gan.metric.diversity_help"))
    cols[1].metric(
        t("gan.metric.lesions"),
        f"{report.lesion_share:.0%}",
        help=t("gan.metric.lesions_help", real=report.real_lesion_share),
    )
    spread = "–" if not np.isfinite(report.centre_spread) else f"{report.centre_spread:.1f} px"
    cols[2].metric(t("gan.metric.spread"), spread, help=t("gan.metric.spread_help", real=report.real_centre_spread))
    st.caption(
        t(
            "gan.modes_caption",
            n=len(run.generated),
            diversity=report.diversity,
            lesions=report.lesion_share,
            real_lesions=report.real_lesion_share,
            spread=spread,
            real_spread=report.real_centre_spread,
        )
    )
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t('gan.generated')}**")
        ui.figure(figs.grey_figure(figs.mosaic(run.generated[:32], 8), height=190), key="gan.generated")
    with right:
        st.markdown(f"**{t('gan.real')}**")
        ui.figure(figs.grey_figure(figs.mosaic(patches[:32], 8), height=190), key="gan.realgrid")
    labels = {"diversity": t("gan.metric.diversity"), "real": t("gan.real_level"), "epoch": t("tasks.curve.epoch")}
    ui.figure(figs.diversity_curve(run.history, labels, state.num_epochs), key="gan.diversity")
    st.caption(t("gan.diversity_caption"))


GAN_G_RATES = [2e-4, 5e-4, 1e-3, 2e-3, 5e-3]
GAN_D_RATES = [1e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3]
