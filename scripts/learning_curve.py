"""Compute the terminology chapter's expensive curves once, into lessons/terminology/data/*.json.

Every point trains a small CNN through primer.train.run_experiment (seconds to a minute each on
a 2-core CPU), so the page reads these files instead of training while a learner waits:

    curve   test and validation AUC against training-set size (50 to 5,000), 3 seeds, beside
            two hand-feature pipelines trained on the same images
    feat    CNN vs hand-engineered features vs the exact ideal observer over contrast × texture
    noise   test AUC as training labels are flipped at random or positives are missed
    imbal   test scores at five prevalences, plain training and oversampled training
    leak    split by image vs by patient at 1, 2, 5 and 10 images per patient

Usage (from the repository root):

    .venv/bin/python -m scripts.learning_curve                  # all five files
    .venv/bin/python -m scripts.learning_curve --only curve,leak
    .venv/bin/python -m scripts.learning_curve --check          # recompute the cheapest points

A file is written after every point and points already present are kept, so an interrupted run
resumes where it stopped. `--fresh` starts the chosen files over. The test suite recomputes a
cheap point and compares it with the stored one (tests/test_terminology.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from primer import terminology as term

VERSION = 1  # bump when a recipe changes; files of another version are recomputed


def settings(kind: str) -> dict:
    """What defines a file's points; stored with them so a stale file is noticed."""
    common = {"version": VERSION}
    if kind == "curve":
        return {
            **common,
            "sizes": list(term.CURVE_SIZES),
            "seeds": list(term.CURVE_SEEDS),
            "num_val": term.CURVE_VAL,
            "num_test": term.CURVE_TEST,
        }
    if kind == "feat":
        return {
            **common,
            "contrasts": list(term.FEAT_CONTRASTS),
            "betas": list(term.FEAT_BETAS),
            "num_train": term.FEAT_TRAIN,
            "num_test": term.FEAT_TEST,
        }
    long = {"num_epochs": term.LABELS_EPOCHS, "contrast": term.LABELS_CONTRAST}
    if kind == "noise":
        rates = {k: list(v) for k, v in term.NOISE_RATES.items()}
        return {**common, **long, "rates": rates, "seeds": list(term.NOISE_SEEDS)}
    if kind == "imbal":
        prevalences = list(term.IMBAL_PREVALENCES)
        return {**common, **long, "augment": True, "prevalences": prevalences, "num_train": term.IMBAL_TRAIN}
    if kind == "leak":
        return {**common, "images_per_patient": list(term.LEAK_IMAGES_PER_PATIENT), "splits": list(term.LEAK_SPLITS)}
    raise ValueError(kind)


def plan(kind: str) -> list[dict]:
    """Every point of a file, cheapest first, as the parameters that identify it."""
    if kind == "curve":
        return [{"num_train": n, "seed": s} for n in term.CURVE_SIZES for s in term.CURVE_SEEDS]
    if kind == "feat":
        return [{"contrast": c, "beta": b} for b in term.FEAT_BETAS for c in term.FEAT_CONTRASTS]
    if kind == "noise":
        return [
            {"kind": k, "rate": r, "seed": s}
            for s in term.NOISE_SEEDS
            for k in term.NOISE_KINDS
            for r in term.NOISE_RATES[k]
            if not (k == "missed" and r == 0.0)  # the same run as random at rate 0
        ]
    if kind == "imbal":
        return [{"prevalence": p, "oversample": o, "seed": 0} for p in term.IMBAL_PREVALENCES for o in (False, True)]
    if kind == "leak":
        return [
            {"images_per_patient": k, "split_by": s, "seed": 0}
            for k in term.LEAK_IMAGES_PER_PATIENT
            for s in term.LEAK_SPLITS
        ]
    raise ValueError(kind)


def setup_for(kind: str, params: dict) -> term.Setup:
    if kind == "curve":
        return term.curve_setup(params["num_train"], params["seed"])
    if kind == "feat":
        return term.feat_setup(params["contrast"], params["beta"])
    if kind == "noise":
        return term.noise_setup(params["kind"], params["rate"], params["seed"])
    if kind == "imbal":
        return term.imbal_setup(params["prevalence"], params["oversample"], params["seed"])
    if kind == "leak":
        return term.leak_setup(params["images_per_patient"], params["split_by"], params["seed"])
    raise ValueError(kind)


def compute_point(kind: str, params: dict) -> dict:
    """Train one point and add what the hand pipelines and the ideal observer say about it."""
    setup = setup_for(kind, params)
    point = term.run_point(setup)
    if kind == "curve":
        point.update(term.hand_summary(setup))
    elif kind == "feat":
        config = setup.parts.train.config
        point["ideal_auc"] = round(term.ideal_auc(params["contrast"], params["beta"]), 4)
        for name in term.FEATURE_SETS:
            hand = term.hand_pipeline(setup.parts.train, setup.parts.test, config, name)
            point[f"hand_{name}_auc"] = round(hand.test_auc, 4)
            point[f"hand_{name}_coefficients"] = {k: round(v, 3) for k, v in hand.coefficients.items()}
    return point


def load(kind: str, fresh: bool) -> dict:
    path = term.data_path(kind)
    if path.exists() and not fresh:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("settings") == settings(kind):
            return stored
        print(f"{path.name}: settings changed, starting over")
    return {"settings": settings(kind), "torch": torch.__version__, "points": []}


def save(kind: str, stored: dict) -> None:
    path = term.data_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")


def run(kind: str, fresh: bool) -> None:
    stored = load(kind, fresh)
    for params in plan(kind):
        if term.find_point(stored["points"], **params) is not None:
            continue
        start = time.perf_counter()
        point = compute_point(kind, params)
        stored["points"].append(point)
        save(kind, stored)
        shown = {k: v for k, v in point.items() if not isinstance(v, (list, dict, str)) or k in params}
        print(f"{kind} {shown} ({time.perf_counter() - start:.0f} s)", flush=True)


CHECKS = {  # the cheapest point of each file: what --check (and the test) recompute
    "curve": {"num_train": 50, "seed": 0},
    "noise": {"kind": "missed", "rate": 0.4, "seed": 0},
}


def check(tolerance: float = 0.03) -> int:
    failures = 0
    for kind, params in CHECKS.items():
        stored = term.find_point(term.load_points(kind)["points"], **params)
        fresh = compute_point(kind, params)
        gap = abs(stored["test_auc"] - fresh["test_auc"])
        print(f"{kind} {params}: stored {stored['test_auc']:.4f}, now {fresh['test_auc']:.4f}, gap {gap:.4f}")
        failures += gap > tolerance
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="curve,feat,noise,imbal,leak", help="comma-separated files")
    parser.add_argument("--fresh", action="store_true", help="start the chosen files over")
    parser.add_argument("--check", action="store_true", help="recompute the cheapest points and compare")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core for others)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.check:
        return check()
    for kind in args.only.split(","):
        run(kind.strip(), args.fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
