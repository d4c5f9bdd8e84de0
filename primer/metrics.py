"""Performance metrics of a binary classifier: the numbers behind chapter 6.

Conventions the page and the tests rely on:
- Labels are 0/1 (bool, int or float); scores are probabilities or logits, higher = more
  suspicious. A case is called positive when ``score >= threshold`` (scikit-learn's convention),
  so a threshold is in the same units as the scores.
- A rate whose denominator is zero is ``float('nan')``: PPV when nothing is called positive,
  sensitivity when there are no positives. Youden's J and F1 follow the same rule.
- Counting is always defined: the confusion matrix of zero cases is all zeros.
- Whatever needs both classes (ROC, AUC, PR/AP, DeLong, bootstrap) raises ``MetricsError`` with
  code ``"one_class"``; empty input there raises ``"empty_input"``. Every user-caused failure is a
  ``MetricsError`` with a stable ``code`` and a ``detail`` dict the UI can translate.
- All-equal scores are not an error: AUC = 0.5 and the DeLong interval has zero width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats
from sklearn import metrics as sk_metrics


class MetricsError(ValueError):
    """A metric cannot be computed from this input. ``code`` is stable; ``detail`` fills the message."""

    def __init__(self, code: str, detail: dict | None = None):
        self.code = code
        self.detail = detail or {}
        super().__init__(f"{code}: {self.detail}")


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _labels_and_scores(y_true, scores, *, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validated (bool labels, float64 scores), both 1-D and of equal length."""
    labels = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise MetricsError("shape_mismatch", {"labels": list(labels.shape), "scores": list(scores.shape)})
    if labels.size == 0 and not allow_empty:
        raise MetricsError("empty_input")
    if not np.isin(labels, (0, 1)).all():
        raise MetricsError("labels_not_binary", {"values": np.unique(labels)[:5].tolist()})
    if not np.isfinite(scores).all():
        raise MetricsError("scores_not_finite", {"count": int((~np.isfinite(scores)).sum())})
    return labels.astype(bool), scores


def _require_both_classes(labels: np.ndarray, *, minimum: int = 1) -> tuple[int, int]:
    """(n_positive, n_negative); raises when a class is missing or has fewer than ``minimum`` cases."""
    n_positive = int(labels.sum())
    n_negative = int(labels.size - n_positive)
    if n_positive == 0 or n_negative == 0:
        raise MetricsError("one_class", {"n_positive": n_positive, "n_negative": n_negative})
    if min(n_positive, n_negative) < minimum:
        raise MetricsError("too_few_cases", {"n_positive": n_positive, "n_negative": n_negative, "minimum": minimum})
    return n_positive, n_negative


def _check_fraction(name: str, value, *, open_interval: bool = False) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    low_ok = value > 0 if open_interval else value >= 0
    high_ok = value < 1 if open_interval else value <= 1
    if not (np.isfinite(value).all() and low_ok.all() and high_ok.all()):
        raise MetricsError("out_of_range", {"name": name, "value": value.tolist()})
    return value


def _ratio(numerator, denominator):
    """numerator / denominator, NaN where the denominator is 0; a Python float for scalar input."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# Confusion matrix and the rates read from it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold (ints), at many thresholds (arrays), or expected counts (floats)."""

    tp: int | float | np.ndarray
    fp: int | float | np.ndarray
    tn: int | float | np.ndarray
    fn: int | float | np.ndarray

    @property
    def n_positive(self):
        return self.tp + self.fn

    @property
    def n_negative(self):
        return self.tn + self.fp

    @property
    def n(self):
        return self.tp + self.fp + self.tn + self.fn

    def as_matrix(self) -> np.ndarray:
        """[[tn, fp], [fn, tp]]: rows are the truth, columns the call (scikit-learn's layout)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]])


@dataclass(frozen=True)
class Rates:
    """Every rate is NaN when its denominator is zero (see the module docstring)."""

    sensitivity: float | np.ndarray  # TP / (TP + FN), recall, true-positive rate
    specificity: float | np.ndarray  # TN / (TN + FP)
    ppv: float | np.ndarray  # TP / (TP + FP), precision
    npv: float | np.ndarray  # TN / (TN + FN)
    accuracy: float | np.ndarray  # (TP + TN) / N
    f1: float | np.ndarray  # 2 TP / (2 TP + FP + FN), harmonic mean of PPV and sensitivity
    youden_j: float | np.ndarray  # sensitivity + specificity - 1


def confusion_at(y_true, scores, threshold: float) -> Confusion:
    """Confusion counts when every case with ``score >= threshold`` is called positive."""
    labels, scores = _labels_and_scores(y_true, scores, allow_empty=True)
    called_positive = scores >= threshold
    tp = int(np.count_nonzero(called_positive & labels))
    fp = int(np.count_nonzero(called_positive & ~labels))
    fn = int(np.count_nonzero(~called_positive & labels))
    tn = int(labels.size - tp - fp - fn)
    return Confusion(tp=tp, fp=fp, tn=tn, fn=fn)


def rates(conf: Confusion) -> Rates:
    """The seven rates of a confusion matrix; works elementwise on array-valued counts."""
    sensitivity = _ratio(conf.tp, conf.tp + conf.fn)
    specificity = _ratio(conf.tn, conf.tn + conf.fp)
    return Rates(
        sensitivity=sensitivity,
        specificity=specificity,
        ppv=_ratio(conf.tp, conf.tp + conf.fp),
        npv=_ratio(conf.tn, conf.tn + conf.fn),
        accuracy=_ratio(conf.tp + conf.tn, conf.n),
        f1=_ratio(2 * conf.tp, 2 * conf.tp + conf.fp + conf.fn),
        youden_j=sensitivity + specificity - 1.0,  # NaN propagates when either is undefined
    )


class ThresholdSweep:
    """The threshold slider's engine: one sort up front, then any threshold in O(log N).

    Counting the cases at or above a threshold is a binary search in each class's sorted scores,
    so the confusion matrix at a new threshold never touches the N scores again. Thresholds may be
    a scalar (int counts, float rates) or an array (array counts and rates, for plotting).
    """

    def __init__(self, y_true, scores):
        labels, scores = _labels_and_scores(y_true, scores, allow_empty=True)
        self.positive_scores = np.sort(scores[labels])
        self.negative_scores = np.sort(scores[~labels])

    @property
    def n_positive(self) -> int:
        return int(self.positive_scores.size)

    @property
    def n_negative(self) -> int:
        return int(self.negative_scores.size)

    def confusion(self, threshold) -> Confusion:
        threshold = np.asarray(threshold, dtype=np.float64)
        # side="left" counts the scores strictly below the threshold; the rest are called positive.
        fn = np.searchsorted(self.positive_scores, threshold, side="left")
        tn = np.searchsorted(self.negative_scores, threshold, side="left")
        tp = self.n_positive - fn
        fp = self.n_negative - tn
        if threshold.ndim == 0:
            return Confusion(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))
        return Confusion(tp=tp, fp=fp, tn=tn, fn=fn)

    def rates(self, threshold) -> Rates:
        return rates(self.confusion(threshold))

    def operating_point(self, threshold) -> tuple[float, float]:
        """(false-positive rate, true-positive rate): where this threshold sits on the ROC curve."""
        at = self.rates(threshold)
        return 1.0 - at.specificity, at.sensitivity

    def youden_optimal_threshold(self) -> float:
        """The score that maximizes sensitivity + specificity - 1 (the highest one if several tie)."""
        if self.n_positive + self.n_negative == 0:
            raise MetricsError("empty_input")
        if self.n_positive == 0 or self.n_negative == 0:
            raise MetricsError("one_class", {"n_positive": self.n_positive, "n_negative": self.n_negative})
        # Only the observed scores change the counts, so they are the only candidates worth trying.
        candidates = np.unique(np.concatenate([self.positive_scores, self.negative_scores]))[::-1]
        youden_j = self.rates(candidates).youden_j
        return float(candidates[int(np.argmax(youden_j))])


# ---------------------------------------------------------------------------------------------
# ROC and precision-recall curves
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RocCurve:
    fpr: np.ndarray  # x of the plot, 1 - specificity
    tpr: np.ndarray  # y of the plot, sensitivity
    thresholds: np.ndarray  # thresholds[0] is +inf: the (0, 0) corner where nothing is positive
    auc: float


@dataclass(frozen=True)
class PrCurve:
    recall: np.ndarray  # x of the plot, falling from 1 (scikit-learn's order)
    precision: np.ndarray  # y of the plot; the last point (recall 0, precision 1) is sklearn's anchor
    thresholds: np.ndarray  # one fewer than the points: the anchor has no threshold
    average_precision: float
    prevalence: float  # the AP of a model that guesses: the PR plot's chance line


def roc(y_true, scores) -> RocCurve:
    """ROC curve through every distinct threshold and its area (scikit-learn)."""
    labels, scores = _labels_and_scores(y_true, scores)
    _require_both_classes(labels)
    # Keep every threshold so the slider's operating point is always a vertex of the drawn curve.
    fpr, tpr, thresholds = sk_metrics.roc_curve(labels, scores, drop_intermediate=False)
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=float(sk_metrics.roc_auc_score(labels, scores)))


def precision_recall(y_true, scores) -> PrCurve:
    """Precision-recall curve and average precision (scikit-learn's step-wise AP, no interpolation)."""
    labels, scores = _labels_and_scores(y_true, scores)
    _require_both_classes(labels)
    precision, recall, thresholds = sk_metrics.precision_recall_curve(labels, scores)
    return PrCurve(
        recall=recall,
        precision=precision,
        thresholds=thresholds,
        average_precision=float(sk_metrics.average_precision_score(labels, scores)),
        prevalence=float(labels.mean()),
    )


# ---------------------------------------------------------------------------------------------
# Uncertainty of the AUC: DeLong (Sun & Xu 2014) and a stratified bootstrap
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeLongComponents:
    """DeLong's structural components for one model.

    ``v10[i]`` is the fraction of negatives that positive i outscores (ties count one half);
    ``v01[j]`` the fraction of positives that outscore negative j. Both average to the AUC.
    """

    auc: float
    v10: np.ndarray  # (n_positive,)
    v01: np.ndarray  # (n_negative,)

    @property
    def variance(self) -> float:
        """Var(AUC) = Var(V10) / m + Var(V01) / n, sample variances (DeLong et al. 1988)."""
        return float(np.var(self.v10, ddof=1) / self.v10.size + np.var(self.v01, ddof=1) / self.v01.size)


@dataclass(frozen=True)
class AucInterval:
    auc: float
    low: float
    high: float
    standard_error: float
    confidence: float
    method: str  # "delong" or "bootstrap"
    resampled_aucs: np.ndarray | None = None  # bootstrap only: plots as a histogram


@dataclass(frozen=True)
class PairedAucTest:
    """DeLong's test that two models scored on the same cases have the same AUC."""

    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    standard_error: float
    z: float
    p_value: float  # two-sided
    low: float  # confidence interval of the difference
    high: float
    confidence: float


def _structural_components(labels: np.ndarray, score_sets: np.ndarray):
    """AUCs, V10 and V01 for k score sets on the same cases, from midranks (Sun & Xu 2014).

    A positive's midrank among all cases minus its midrank among the positives alone is the number
    of negatives below it (ties count one half): one O(N log N) ranking replaces the m x n
    comparisons of the definition.
    """
    positives = score_sets[:, labels]  # (k, m)
    negatives = score_sets[:, ~labels]  # (k, n)
    m, n = positives.shape[1], negatives.shape[1]
    combined = np.concatenate([positives, negatives], axis=1)  # (k, m + n)
    rank_combined = stats.rankdata(combined, axis=1)  # midranks: tied scores share the mean rank
    rank_positive = stats.rankdata(positives, axis=1)
    rank_negative = stats.rankdata(negatives, axis=1)
    v10 = (rank_combined[:, :m] - rank_positive) / n  # (k, m)
    v01 = 1.0 - (rank_combined[:, m:] - rank_negative) / m  # (k, n)
    return v10.mean(axis=1), v10, v01


def _delong_covariance(labels: np.ndarray, score_sets: np.ndarray):
    """AUCs (k,) and their covariance matrix (k, k)."""
    aucs, v10, v01 = _structural_components(labels, score_sets)
    covariance = np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]
    return aucs, covariance


def _z_for(confidence: float) -> float:
    _check_fraction("confidence", confidence, open_interval=True)
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def delong_components(y_true, scores) -> DeLongComponents:
    labels, scores = _labels_and_scores(y_true, scores)
    _require_both_classes(labels)
    aucs, v10, v01 = _structural_components(labels, scores[np.newaxis, :])  # (1, N)
    return DeLongComponents(auc=float(aucs[0]), v10=v10[0], v01=v01[0])


def delong_auc_ci(y_true, scores, confidence: float = 0.95) -> AucInterval:
    """AUC with a normal-theory interval from DeLong's variance, clipped to [0, 1] (as pROC does)."""
    z = _z_for(confidence)
    labels, scores = _labels_and_scores(y_true, scores)
    _require_both_classes(labels, minimum=2)  # a sample variance needs two cases per class
    components = delong_components(labels, scores)
    standard_error = float(np.sqrt(components.variance))
    return AucInterval(
        auc=components.auc,
        low=max(0.0, components.auc - z * standard_error),
        high=min(1.0, components.auc + z * standard_error),
        standard_error=standard_error,
        confidence=confidence,
        method="delong",
    )


def _auc_rows(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each row: positives (B, m) against negatives (B, n)."""
    m, n = positives.shape[1], negatives.shape[1]
    ranks = stats.rankdata(np.concatenate([positives, negatives], axis=1), axis=1)  # (B, m + n)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)


def bootstrap_auc_ci(y_true, scores, confidence: float = 0.95, num_resamples: int = 2000, seed: int = 0) -> AucInterval:
    """Percentile bootstrap interval; resampling within each class keeps every resample's AUC defined."""
    _z_for(confidence)
    labels, scores = _labels_and_scores(y_true, scores)
    m, n = _require_both_classes(labels)
    if num_resamples < 1:
        raise MetricsError("out_of_range", {"name": "num_resamples", "value": num_resamples})
    positives, negatives = scores[labels], scores[~labels]
    rng = np.random.default_rng(seed)
    # Chunks of about two million scores keep memory flat however large the test set is.
    rows_per_chunk = max(1, 2_000_000 // (m + n))
    resampled = []
    for start in range(0, num_resamples, rows_per_chunk):
        rows = min(rows_per_chunk, num_resamples - start)
        resampled.append(
            _auc_rows(positives[rng.integers(0, m, size=(rows, m))], negatives[rng.integers(0, n, size=(rows, n))])
        )
    resampled_aucs = np.concatenate(resampled)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(resampled_aucs, [tail, 100.0 - tail])
    return AucInterval(
        auc=float(sk_metrics.roc_auc_score(labels, scores)),
        low=float(low),
        high=float(high),
        standard_error=float(np.std(resampled_aucs, ddof=1)) if num_resamples > 1 else float("nan"),
        confidence=confidence,
        method="bootstrap",
        resampled_aucs=resampled_aucs,
    )


def delong_test(y_true, scores_a, scores_b, confidence: float = 0.95) -> PairedAucTest:
    """Paired DeLong test of AUC(a) = AUC(b) for two models scored on the same cases.

    The correlation between the two models (same cases, same difficulty) enters through the
    covariance of their structural components, which is what makes the paired test sharper than
    comparing two separate intervals. Identical scores give z = 0 and p = 1; a nonzero difference
    with zero variance gives z = +/-inf and p = 0.
    """
    z_crit = _z_for(confidence)
    labels, scores_a = _labels_and_scores(y_true, scores_a)
    _, scores_b = _labels_and_scores(labels, scores_b)
    _require_both_classes(labels, minimum=2)
    aucs, covariance = _delong_covariance(labels, np.stack([scores_a, scores_b]))  # (2, N)
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2.0 * covariance[0, 1])
    # Identical inputs give exactly zero; rounding can leave a hair below it.
    standard_error = float(np.sqrt(max(variance, 0.0)))
    if standard_error > 0:
        z = difference / standard_error
    else:
        z = 0.0 if difference == 0 else float(np.copysign(np.inf, difference))
    return PairedAucTest(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        standard_error=standard_error,
        z=z,
        p_value=float(2.0 * stats.norm.sf(abs(z))),
        low=difference - z_crit * standard_error,
        high=difference + z_crit * standard_error,
        confidence=confidence,
    )


# ---------------------------------------------------------------------------------------------
# Prevalence: the same test in a different population
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BayesTerms:
    """Everything needed to write Bayes' theorem out with the numbers in it.

    PPV = sens x prev / (sens x prev + (1 - spec) x (1 - prev))
    NPV = spec x (1 - prev) / (spec x (1 - prev) + (1 - sens) x prev)
    The ``*_share`` fields are those four products (fractions of the whole population); the counts
    are the same fractions of ``population`` people ("natural frequencies", easier to read).
    """

    sensitivity: float
    specificity: float
    prevalence: float
    true_positive_share: float  # sens x prev
    false_positive_share: float  # (1 - spec) x (1 - prev)
    true_negative_share: float  # spec x (1 - prev)
    false_negative_share: float  # (1 - sens) x prev
    ppv: float
    npv: float
    population: int
    true_positives: float
    false_positives: float
    true_negatives: float
    false_negatives: float


def ppv_npv_at_prevalence(sensitivity, specificity, prevalence):
    """(PPV, NPV) by Bayes' theorem; vectorized, so an array of prevalences draws the curves."""
    sensitivity = _check_fraction("sensitivity", sensitivity)
    specificity = _check_fraction("specificity", specificity)
    prevalence = _check_fraction("prevalence", prevalence)
    true_positive = sensitivity * prevalence
    false_positive = (1.0 - specificity) * (1.0 - prevalence)
    true_negative = specificity * (1.0 - prevalence)
    false_negative = (1.0 - sensitivity) * prevalence
    return (
        _ratio(true_positive, true_positive + false_positive),
        _ratio(true_negative, true_negative + false_negative),
    )


def bayes_terms(sensitivity: float, specificity: float, prevalence: float, population: int = 1000) -> BayesTerms:
    sensitivity = float(_check_fraction("sensitivity", sensitivity))
    specificity = float(_check_fraction("specificity", specificity))
    prevalence = float(_check_fraction("prevalence", prevalence))
    ppv, npv = ppv_npv_at_prevalence(sensitivity, specificity, prevalence)
    shares = {
        "true_positive_share": sensitivity * prevalence,
        "false_positive_share": (1.0 - specificity) * (1.0 - prevalence),
        "true_negative_share": specificity * (1.0 - prevalence),
        "false_negative_share": (1.0 - sensitivity) * prevalence,
    }
    return BayesTerms(
        sensitivity=sensitivity,
        specificity=specificity,
        prevalence=prevalence,
        ppv=ppv,
        npv=npv,
        population=population,
        true_positives=shares["true_positive_share"] * population,
        false_positives=shares["false_positive_share"] * population,
        true_negatives=shares["true_negative_share"] * population,
        false_negatives=shares["false_negative_share"] * population,
        **shares,
    )


def reweight_to_prevalence(conf: Confusion, prevalence: float) -> Confusion:
    """Expected (float) counts if the same number of cases had this prevalence.

    Sensitivity and specificity are properties of the test and stay; the positives' row is scaled
    up or down and the negatives' row the other way. ``rates()`` of the result gives PPV and NPV
    by Bayes' theorem, and accuracy and F1 at the new prevalence too.
    """
    prevalence = float(_check_fraction("prevalence", prevalence))
    n_positive, n_negative = conf.n_positive, conf.n_negative
    if n_positive == 0 or n_negative == 0:
        raise MetricsError("one_class", {"n_positive": int(n_positive), "n_negative": int(n_negative)})
    positive_weight = prevalence * conf.n / n_positive
    negative_weight = (1.0 - prevalence) * conf.n / n_negative
    return Confusion(
        tp=conf.tp * positive_weight,
        fn=conf.fn * positive_weight,
        fp=conf.fp * negative_weight,
        tn=conf.tn * negative_weight,
    )


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins on [0, 1]; bin i holds edges[i] <= p < edges[i + 1] (the last includes 1)."""

    edges: np.ndarray  # (num_bins + 1,)
    counts: np.ndarray  # (num_bins,) int
    mean_predicted: np.ndarray  # (num_bins,) x of the reliability diagram; NaN in an empty bin
    observed_frequency: np.ndarray  # (num_bins,) y of the diagram; NaN in an empty bin

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2.0


def _labels_and_probabilities(y_true, probabilities):
    labels, probabilities = _labels_and_scores(y_true, probabilities)
    if probabilities.min() < 0.0 or probabilities.max() > 1.0:
        raise MetricsError("not_probabilities", {"min": float(probabilities.min()), "max": float(probabilities.max())})
    return labels, probabilities


def reliability_bins(y_true, probabilities, num_bins: int = 10) -> ReliabilityBins:
    labels, probabilities = _labels_and_probabilities(y_true, probabilities)
    if num_bins < 1:
        raise MetricsError("out_of_range", {"name": "num_bins", "value": num_bins})
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # Searching the edges themselves (not floor(p * num_bins)) keeps a p that sits on an edge in
    # the bin those same edges say it is in.
    bin_index = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, num_bins - 1)
    counts = np.bincount(bin_index, minlength=num_bins)
    predicted_sums = np.bincount(bin_index, weights=probabilities, minlength=num_bins)
    positive_sums = np.bincount(bin_index, weights=labels.astype(np.float64), minlength=num_bins)
    return ReliabilityBins(
        edges=edges,
        counts=counts,
        mean_predicted=_ratio(predicted_sums, counts),
        observed_frequency=_ratio(positive_sums, counts),
    )


def expected_calibration_error(y_true, probabilities, num_bins: int = 10) -> float:
    """Sum over bins of (share of cases) x |observed frequency - mean predicted probability|."""
    bins = reliability_bins(y_true, probabilities, num_bins)
    filled = bins.counts > 0
    gaps = np.abs(bins.observed_frequency[filled] - bins.mean_predicted[filled])
    return float(np.sum(bins.counts[filled] * gaps) / bins.counts.sum())


def brier_score(y_true, probabilities) -> float:
    """Mean squared distance between the predicted probability and the 0/1 outcome."""
    labels, probabilities = _labels_and_probabilities(y_true, probabilities)
    return float(np.mean((probabilities - labels) ** 2))


def _logits_and_targets(logits, y_true) -> tuple[np.ndarray, np.ndarray]:
    """(N,) binary logits with 0/1 labels, or (N, C) logits with class indices 0..C-1."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        labels, logits = _labels_and_scores(y_true, logits)
        return logits, labels.astype(np.intp)
    targets = np.asarray(y_true)
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise MetricsError("shape_mismatch", {"logits": list(logits.shape), "labels": list(targets.shape)})
    if targets.size == 0:
        raise MetricsError("empty_input")
    if not np.isfinite(logits).all():
        raise MetricsError("scores_not_finite", {"count": int((~np.isfinite(logits)).sum())})
    if not np.isin(targets, np.arange(logits.shape[1])).all():
        raise MetricsError("labels_not_binary", {"values": np.unique(targets)[:5].tolist()})
    return logits, targets.astype(np.intp)


def _mean_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    if scaled.ndim == 1:
        # -log sigmoid(+z) for positives, -log sigmoid(-z) for negatives, without overflow.
        signed = np.where(targets == 1, -scaled, scaled)
        return float(np.mean(np.logaddexp(0.0, signed)))
    log_partition = special.logsumexp(scaled, axis=1)  # (N,)
    return float(np.mean(log_partition - scaled[np.arange(scaled.shape[0]), targets]))


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Probabilities after dividing the logits by T: sigmoid for (N,), softmax over classes for (N, C)."""
    if not temperature > 0:
        raise MetricsError("out_of_range", {"name": "temperature", "value": float(temperature)})
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    return special.expit(scaled) if scaled.ndim == 1 else special.softmax(scaled, axis=-1)


def temperature_nll(logits, y_true, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under logits / T (T = 1: the raw model)."""
    if not temperature > 0:
        raise MetricsError("out_of_range", {"name": "temperature", "value": float(temperature)})
    logits, targets = _logits_and_targets(logits, y_true)
    return _mean_nll(logits, targets, temperature)


def fit_temperature(logits, y_true, bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """The T > 0 that minimizes validation NLL of logits / T (Guo et al. 2017).

    The search runs on log T, which keeps T positive and treats "twice too confident" and "twice
    too timid" alike. T > 1 means the model was over-confident. When one class is perfectly
    separated the NLL keeps falling as T shrinks, so the answer stops at the lower bound.
    """
    logits, targets = _logits_and_targets(logits, y_true)
    low, high = bounds
    if not 0 < low < high:
        raise MetricsError("out_of_range", {"name": "bounds", "value": [float(low), float(high)]})
    result = optimize.minimize_scalar(
        lambda log_t: _mean_nll(logits, targets, float(np.exp(log_t))),
        bounds=(np.log(low), np.log(high)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))
