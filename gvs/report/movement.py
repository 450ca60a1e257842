"""When an explanation has nothing to explain: the two thresholds every section of a report applies.

An explanation perturbs its input (hides sections, superpixels, adds pixel noise, deletes parts in order) and
reads how the explained probability moves. A model that is saturated (p = 1.00 whatever it sees) or that ignores
the perturbed input gives no movement to explain, and any map, ranking or verdict drawn from it would paint noise.

MIN_CHANGE = 0.005: the page prints probabilities with two decimals, so a change below half their last digit
    cannot show in them ("from 1.00 to 1.00"); a section whose explained probability moved by less than this under
    every one of its perturbations says so in one sentence and draws no map, no ranks and no verdict.
MIN_R2 = 0.2: a surrogate explaining less than a fifth of how the probability varied across LIME's samples; it is
    also what LIME's weighted ridge reaches on pure-noise labels with the defaults, 40 superpixels and 200 samples
    (measured: mean 0.21 over 40 draws; it tracks superpixels / samples: 0.47 for 20 / 40, 0.04 for 40 / 1000).
    A map whose R^2 is below ``r2_floor`` (MIN_R2, or that noise level when fewer samples raise it) is drawn
    faded, with the reason.
"""

from __future__ import annotations

import numpy as np

MIN_CHANGE = 0.005
MIN_R2 = 0.2


def spread(probabilities) -> float:
    """Largest minus smallest of the explained probability over an explanation's perturbed copies (any shape)."""
    values = np.asarray(probabilities, dtype=np.float64)
    return float(np.ptp(values)) if values.size else 0.0


def moved(probabilities) -> bool:
    """Whether the explained probability moved by at least MIN_CHANGE across ``probabilities`` (any shape)."""
    return spread(probabilities) >= MIN_CHANGE


def r2_floor(superpixels: int, samples: int) -> float:
    """The R^2 below which a LIME surrogate of ``superpixels`` features fitted on ``samples`` is drawn faded:
    MIN_R2, or superpixels / samples (the R^2 a fit to pure noise reaches) when that is higher."""
    return max(MIN_R2, superpixels / max(samples, 1))


def unmoved_sentence(perturbation: str, probability: str, change: float) -> str:
    """One sentence saying that ``perturbation`` (e.g. "Removing any one section") moved ``probability`` (e.g.
    "the fused p(Negative)") by only ``change``, so there is nothing to explain."""
    return (
        f"{perturbation} moved {probability} by at most {change:.3f}, less than {MIN_CHANGE} (a change the page's "
        "two-decimal probabilities cannot show): there is nothing here to explain, so no map, rank or verdict is given."
    )
