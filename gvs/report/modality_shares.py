"""Section 7: each modality's share of the fused prediction, by exact Shapley values over the modalities.

A coalition S of modalities is scored by zeroing the features of every modality outside it (all rows padding,
which the models mask, i.e. "not observed") and reading the fused probability of the explained class:
v(S). With M <= 4 modalities there are at most 16 coalitions, scored in one batch. The Shapley value of modality
m averages its marginal contribution v(S + m) - v(S) over the orders in which modalities can join; the values
sum to v(all) - v(none). Leaving one modality out, v(all) - v(all - m), is shown beside them. When no coalition
moves the fused probability by movement.MIN_CHANGE, the section says so and draws no shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np

from gvs.core.figures import subplots
from gvs.predict.predictor import FUSED

from .movement import MIN_CHANGE, spread, unmoved_sentence
from .sections import Figure, Section, Table, png_bytes
from .window import ExplainedWindow

SUPPORTS, OPPOSES = "#27ae60", "#c0392b"  # bar colours: the modality raises / lowers p(class)


@dataclass
class ModalityShares:
    """Exact Shapley values of the window's modalities for the fused probability of the explained class.

    modalities : (M,) names, the bundle's order
    coalitions : (2^M, M) bool, row r has modality i when bit i of r is set (row 0: none, last row: all)
    values : (2^M,) v(coalition), the fused probability of the class with the other modalities zeroed
    phi : (M,) signed Shapley values, summing to v(all) - v(none)
    shares : (M,) |phi| / sum |phi| (sums to 1; all zero when every phi is zero)
    leave_one_out : (M,) v(all) - v(all without m)
    own : (M,) each modality model's own probability of the class on the unchanged window
    """

    modalities: list[str]
    coalitions: np.ndarray
    values: np.ndarray
    phi: np.ndarray
    shares: np.ndarray
    leave_one_out: np.ndarray
    own: np.ndarray

    @property
    def v_all(self) -> float:
        return float(self.values[-1])

    @property
    def v_none(self) -> float:
        return float(self.values[0])

    @property
    def moved(self) -> bool:
        """Whether leaving modalities out moved the fused probability by at least MIN_CHANGE in some coalition."""
        return spread(self.values) >= MIN_CHANGE

    @property
    def direction(self) -> np.ndarray:
        """(M,) +1 where the modality supports the class, -1 where it argues against it, 0 where it does nothing."""
        return np.sign(self.phi)


def coalitions(m: int) -> np.ndarray:
    """(2^m, m) bool: every subset of m modalities, row r holding modality i when bit i of r is set."""
    rows = np.arange(2**m)[:, None]
    return (rows >> np.arange(m)[None]) & 1 == 1


def shapley_values(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """(M,) exact Shapley values of a game given on every coalition.

    values : (2^M,) v(S) for the rows of ``members`` (2^M, M) bool, as ``coalitions(M)`` orders them
    """
    m = members.shape[1]
    index = {tuple(row): r for r, row in enumerate(members)}
    phi = np.zeros(m)
    for r, row in enumerate(members):
        size = int(row.sum())
        for i in np.flatnonzero(~row):
            joined = row.copy()
            joined[i] = True
            weight = factorial(size) * factorial(m - size - 1) / factorial(m)
            phi[i] += weight * (values[index[tuple(joined)]] - values[r])
    return phi


def modality_shares(window: ExplainedWindow) -> ModalityShares:
    """Score every coalition of the window's modalities (absent ones zeroed) in one batch and take their exact
    Shapley values and leave-one-out changes for the fused probability of the explained class."""
    names = window.modalities
    members = coalitions(len(names))
    features = window.tiled(len(members))
    for i, name in enumerate(names):
        features[name][~members[:, i]] = 0.0
    scores = window.score(features)
    values = scores[FUSED][:, window.class_index].astype(np.float64)
    phi = shapley_values(values, members)
    total = np.abs(phi).sum()
    shares = np.abs(phi) / total if total > 0 else np.zeros_like(phi)
    full = len(members) - 1
    leave_one_out = values[full] - values[[full ^ (1 << i) for i in range(len(names))]]
    own = np.array([window.prediction.probabilities[n][window.class_index] for n in names])
    return ModalityShares(names, members, values, phi, shares, leave_one_out, own)


def section(result: ModalityShares, window: ExplainedWindow) -> Section:
    """Section "modalities": the shares coloured by direction, the leave-one-out changes, a table and the caveat;
    when no coalition moved the fused probability, a sentence and the table of the (near-zero) values only."""
    if not result.moved:
        return _unmoved_section(result, window)
    name = window.class_name
    rows = [
        [
            modality,
            f"{result.own[i]:.2f}",
            f"{result.shares[i]:.0%}",
            _direction_word(result.phi[i]),
            f"{result.phi[i]:+.3f}",
            f"{result.leave_one_out[i]:+.3f}",
        ]
        for i, modality in enumerate(result.modalities)
    ]
    return Section(
        "modalities",
        "Which modalities",
        _text(result, window),
        figures=[
            Figure("modalities-shares", png_bytes(_shares_figure(result, name)), "Share of the attribution"),
            Figure(
                "modalities-leave-one-out",
                png_bytes(_leave_one_out_figure(result, name)),
                "Change when one modality is left out",
            ),
        ],
        tables=[
            Table(
                ["modality", f"own p({name})", "share of |attribution|", "direction", "Shapley value", "leave-one-out"],
                rows,
                f"Each modality's part in the fused p({name}) = {result.v_all:.2f}",
            )
        ],
        caveat="Leaving a modality out sets all its features to padding, i.e. 'not observed': a state the fusion "
        "rarely or never saw in training, so the values say what the fusion does with such inputs, not what it "
        "learned from each modality. The shares are exact Shapley values for this window only; another window of the "
        "same video can split differently.",
        arrays=_arrays(result),
    )


def _unmoved_section(result: ModalityShares, window: ExplainedWindow) -> Section:
    """The section when no coalition moved the fused probability: one sentence and each modality's own p and
    values, no shares, no directions and no figures (shares of near-zero values would paint noise)."""
    name = window.class_name
    rows = [
        [modality, f"{result.own[i]:.2f}", f"{result.phi[i]:+.3f}", f"{result.leave_one_out[i]:+.3f}"]
        for i, modality in enumerate(result.modalities)
    ]
    text = (
        f"Every combination of the {len(result.modalities)} modalities was scored with the others left out (their "
        "features replaced by the padding the models ignore).\n\n"
        + unmoved_sentence(
            f"Leaving modalities out in any of the {len(result.coalitions) - 1} combinations",
            f"the fused p({name}) from {result.v_all:.2f}",
            spread(result.values),
        )
    )
    return Section(
        "modalities",
        "Which modalities",
        text,
        tables=[
            Table(
                ["modality", f"own p({name})", "Shapley value", "leave-one-out"],
                rows,
                f"Fused p({name}) {result.v_all:.2f}",
            )
        ],
        arrays=_arrays(result),
    )


def _arrays(result: ModalityShares) -> dict[str, np.ndarray]:
    """The numbers behind the section, for the Python API."""
    return {
        "phi": result.phi,
        "shares": result.shares,
        "leave_one_out": result.leave_one_out,
        "own": result.own,
        "coalition_values": result.values,
        "coalitions": result.coalitions,
    }


def _direction_word(phi: float) -> str:
    return "supports" if phi > 0 else "against" if phi < 0 else "none"


def _text(result: ModalityShares, window: ExplainedWindow) -> str:
    """How the shares are made, naming the modality with the largest share."""
    name = window.class_name
    top = int(np.argmax(result.shares))
    text = (
        f"Every combination of the {len(result.modalities)} modalities is scored with the others left out (their "
        f"features replaced by the padding the models ignore): with all of them the fused p({name}) is "
        f"{result.v_all:.2f}, with none {result.v_none:.2f}. A modality's Shapley value is its average effect when "
        "it joins the others, over every order they can join in; the values add up to the difference "
        f"({result.v_all - result.v_none:+.3f}). The bars show each modality's share of their absolute sum, green "
        f"where the modality raises p({name}), red where it lowers it.\n\n"
        f"{result.modalities[top]} has the largest share ({result.shares[top]:.0%}, "
        f"{_direction_word(result.phi[top])} {name}). The second figure leaves one modality out at a time with "
        "the others kept: a modality whose removal changes little may still matter when others are missing."
    )
    if np.allclose(result.phi, result.leave_one_out, atol=1e-3):
        text += (
            " Here the Shapley values equal the leave-one-out changes, as they do when the fusion adds up the "
            "modalities' contributions (a soft vote of their probabilities does)."
        )
    not_fused = [m for m in window.modalities if m not in window.present]
    if not_fused:
        text += (
            f"\n\n{', '.join(not_fused)} had nothing in this window, so the fusion fused only "
            f"{', '.join(window.present)} (it masks the others) and their Shapley value is zero."
        )
    return text


def _bars(values: np.ndarray, signs: np.ndarray, labels: list[str], names: list[str], xlabel: str):
    """Matplotlib figure: horizontal bars of (M,) ``values``, green where ``signs`` > 0, red where < 0."""
    figure, axis = subplots(figsize=(6.5, 0.55 * len(names) + 1.4))
    colours = [SUPPORTS if s > 0 else OPPOSES if s < 0 else "grey" for s in signs]
    axis.barh(names, values, color=colours)
    for position, (value, label) in enumerate(zip(values, labels)):
        axis.text(value, position, f" {label}", va="center", ha="left" if value >= 0 else "right", fontsize=9)
    axis.axvline(0, color="black", linewidth=0.6)
    limit = 1.4 * max(float(np.abs(values).max()), 1e-3)
    axis.set_xlim(-limit if (values < 0).any() else 0, limit)
    axis.invert_yaxis()
    axis.set_xlabel(xlabel)
    figure.tight_layout()
    return figure


def _shares_figure(result: ModalityShares, class_name: str):
    """Shares of |phi| per modality, coloured by the sign of phi, the signed value written beside each bar."""
    labels = [f"{s:.0%} ({p:+.3f})" for s, p in zip(result.shares, result.phi)]
    return _bars(
        result.shares,
        result.phi,
        labels,
        result.modalities,
        f"share of |Shapley value| (signed value in brackets; green supports {class_name}, red against)",
    )


def _leave_one_out_figure(result: ModalityShares, class_name: str):
    """Leave-one-out change of p(class) per modality, coloured by its sign."""
    labels = [f"{c:+.3f}" for c in result.leave_one_out]
    return _bars(
        result.leave_one_out,
        result.leave_one_out,
        labels,
        result.modalities,
        f"p({class_name}) with all modalities minus p({class_name}) without this one",
    )
