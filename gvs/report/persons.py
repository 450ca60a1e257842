"""Section "The people in this video": who was there (gvs.people's person tracks), how their expressions ran, and
how much each one carried the verdict.

Each person seen on at least PERSON_MIN_FRAMES sampled frames gets their thumbnail (their largest face, blurred
whole under --blur-faces), an expression strip over the video's time (their strongest expression at each sampled
frame their face was found, gvs.predict.timeline's palette) and the drop of the video's p(verdict) when their faces
are taken out of every window they appear in (``drop_fused``, computed by the predictor). People seen on fewer
frames are left out of the figure and named in the text. The thumbnails are ranked by that drop, largest first;
when no person's removal moves p(verdict) by movement.MIN_CHANGE the section says so in one sentence and ranks
nobody (they are shown by id, the order of first appearance). A second figure shows the group over the windows:
how many people each window shows and their agreement (the share of them whose top expression is the window's
most common one). A video whose people were not tracked (--no-people) gets one sentence.
"""

from __future__ import annotations

import math

import numpy as np

from gvs.core.figures import subplots
from gvs.core.privacy import blurred_thumbnail
from gvs.predict.predictor import VideoPrediction
from gvs.predict.timeline import (
    EXPRESSION_COLOURS,
    PERSON_MIN_FRAMES,
    draw_strip,
    expression_handles,
    sighting_step,
    window_centres,
)

from .movement import MIN_CHANGE, unmoved_sentence
from .sections import Figure, Section, Table, png_bytes

KEY = "persons"
TITLE = "The people in this video"
MAX_SHOWN = 12  # thumbnails in the figure (the table lists everyone)
COLUMNS = 6  # thumbnails per row of the figure
PANEL_INCHES = 1.9


def drop_sentence(class_name: str, drop: float, person_id: int) -> str:
    """'p(Negative) falls 0.12 without person 3' (or 'rises 0.03' for a negative drop; 'moves less than 0.005'
    for a drop under movement.MIN_CHANGE, which would read as 0.00)."""
    if abs(drop) < MIN_CHANGE:
        return f"p({class_name}) moves less than {MIN_CHANGE:g} without person {person_id}"
    verb = "falls" if drop >= 0 else "rises"
    return f"p({class_name}) {verb} {abs(drop):.2f} without person {person_id}"


def signed(value: float | None) -> str:
    """'+0.12' / '−0.03' / '-' for None (the table's drops)."""
    if value is None:
        return "-"
    return f"{'+' if value >= 0 else '−'}{abs(value):.2f}"


def ranked(people: list[dict]) -> tuple[list[dict], float | None]:
    """``people`` in the section's order and the largest |drop_fused| among them (None when none was measured):
    by drop_fused, largest first (unmeasured last, ties by id) when that largest change reaches MIN_CHANGE, else by
    id."""
    measured = [abs(p["drop_fused"]) for p in people if p.get("drop_fused") is not None]
    change = max(measured) if measured else None
    if change is None or change < MIN_CHANGE:
        return sorted(people, key=lambda p: p["id"]), change
    drop = {p["id"]: p["drop_fused"] for p in people}
    return sorted(people, key=lambda p: (drop[p["id"]] is None, -(drop[p["id"]] or 0.0), p["id"])), change


def persons_section(video: VideoPrediction, blur_faces: bool = False) -> Section:
    """Section "persons" of ``video`` (a done prediction; its ``people``, ``thumbnails`` and the windows' group
    figures). ``blur_faces``: blur every thumbnail."""
    tracked = bool(video.people) or any(w.people is not None for w in video.windows)
    if not tracked:
        return Section(
            KEY,
            TITLE,
            "The people in this video were not tracked: people tracking was off for this prediction (--no-people), "
            "so there is no one to show.",
        )
    verdict = video.verdict or ""
    shown = [p for p in video.people if p.get("frames_seen", 0) >= PERSON_MIN_FRAMES]
    few = [p for p in video.people if p.get("frames_seen", 0) < PERSON_MIN_FRAMES]
    order, change = ranked(shown)
    moved = change is not None and change >= MIN_CHANGE
    figures, arrays = (
        [],
        {
            "person_ids": np.array([p["id"] for p in order], dtype=int),
            "drops_fused": np.array([np.nan if p["drop_fused"] is None else p["drop_fused"] for p in order]),
        },
    )
    if order:
        figure = _people_figure(video, order[:MAX_SHOWN], verdict, moved, blur_faces)
        figures.append(Figure("persons", png_bytes(figure), _people_caption(verdict, moved, blur_faces)))
    group = [w for w in video.windows if w.people is not None]
    if group and video.people:
        arrays["window_people"] = np.array([w.people for w in group], dtype=float)
        arrays["window_agreement"] = np.array([np.nan if w.agreement is None else w.agreement for w in group])
        figures.append(
            Figure("group", png_bytes(_group_figure(video)), "How many people each window shows, and their agreement")
        )
    return Section(
        KEY,
        TITLE,
        _text(video, order, few, change, verdict, blur_faces),
        figures=figures,
        tables=[_table(video, order + sorted(few, key=lambda p: p["id"]), verdict, moved)] if video.people else [],
        caveat="People are faces linked from sampled frame to sampled frame and across gaps by how alike they look: "
        "one person can be split in two (turned away, hidden, out of frame for long) and two look-alikes merged. "
        "The drop measures only what the faces model saw of a person (their expressions and their share of the face "
        "count), taken out with everything else kept: what the scene, pose and audio models saw of them stays in. "
        "A face too small or too turned for the detector is nobody here.",
        arrays=arrays,
    )


def _people_caption(verdict: str, moved: bool, blur_faces: bool) -> str:
    order = f"ranked by how far p({verdict}) falls without them" if moved else "in order of first appearance"
    return f"The people ({order}), each with their expressions over the video" + (
        "; faces blurred" if blur_faces else ""
    )


def _text(
    video: VideoPrediction, order: list[dict], few: list[dict], change: float | None, verdict: str, blur: bool
) -> str:
    """What the figures show, who carried the verdict (or that nobody moved it), and who was left out."""
    if not video.people:
        return "No face was found on any sampled frame of this video, so there is no one to show."
    count = len(video.people)
    parts = [
        f"{count} {'person was' if count == 1 else 'different people were'} tracked over the video's sampled frames "
        f"(faces linked from frame to frame, and across gaps by how alike they look). Each thumbnail is a person's "
        "largest face"
        + (", blurred (--blur-faces)" if blur else "")
        + "; the strip under it runs over the whole video and is coloured by their strongest expression at each "
        "sampled frame their face was found (legend above the thumbnails). The drop is how far the video's "
        f"p({verdict}) falls when that person's faces are taken out of every window they appear in, everything "
        "else kept."
    ]
    if not order:
        parts.append(f"Nobody was seen on {PERSON_MIN_FRAMES} sampled frames or more, so no thumbnail is drawn.")
    elif change is None:
        parts.append(
            "The drops could not be measured (the model has no faces modality), so the people are shown in order of "
            "first appearance."
        )
    elif change < MIN_CHANGE:
        parts.append(
            unmoved_sentence(
                "Taking any one person's faces out of the windows they appear in", f"the video's p({verdict})", change
            )
            + " The people are shown in order of first appearance."
        )
    else:
        top, others = order[0], [p for p in order[1:3] if (p["drop_fused"] or 0.0) >= MIN_CHANGE]
        parts.append(
            f"Person {top['id']} carried the verdict most: {drop_sentence(verdict, top['drop_fused'], top['id'])} "
            f"(their strongest expression overall: {top['top_expression']})."
            + ("".join(f" Next, {drop_sentence(verdict, p['drop_fused'], p['id'])}." for p in others))
        )
        rising = [p for p in order if p["drop_fused"] is not None and p["drop_fused"] <= -MIN_CHANGE]
        if rising:
            parts.append(
                "Some pulled the other way: "
                + "; ".join(drop_sentence(verdict, p["drop_fused"], p["id"]) for p in rising[::-1][:3])
                + "."
            )
    if len(order) > MAX_SHOWN:
        parts.append(f"The figure shows the first {MAX_SHOWN} of them; the table lists everyone.")
    if few:
        names = ", ".join(f"person {p['id']} ({p['frames_seen']})" for p in sorted(few, key=lambda p: p["id"]))
        parts.append(
            f"Left out of the figure and the ranking, seen on fewer than {PERSON_MIN_FRAMES} sampled frames "
            f"(frames in brackets): {names}."
        )
    group = [w for w in video.windows if w.people is not None]
    if group:
        most = max(group, key=lambda w: w.people)
        parts.append(
            "The second figure follows the group over the windows: how many people each window shows (at most "
            f"{most.people}, in the window from {most.start_s:.1f} s) and their agreement, the share of them whose "
            "strongest expression is the window's most common one (its dot coloured by that expression)."
        )
    return "\n\n".join(parts)


def _table(video: VideoPrediction, people: list[dict], verdict: str, moved: bool) -> Table:
    """One row per person: in the section's order, then those seen on too few frames."""
    rows = []
    for rank, p in enumerate(people, 1):
        enough = p.get("frames_seen", 0) >= PERSON_MIN_FRAMES
        rows.append(
            [
                str(rank) if moved and enough else "-",
                f"person {p['id']}" + ("" if enough else " (too few frames)"),
                f"{p['first_s']:.1f}-{p['last_s']:.1f} s",
                str(p["frames_seen"]),
                p["top_expression"],
                signed(p.get("drop_fused")),
                signed(p.get("drop_faces")),
            ]
        )
    return Table(
        ["rank", "person", "seen", "sampled frames", "top expression", f"drop in p({verdict})", "faces model's drop"],
        rows,
        f"Each person: when they were seen, their strongest expression, and how far p({verdict}) falls without "
        "their faces (the video's fused, and the faces model's mean over their windows; negative: it rises)",
    )


def _people_figure(video: VideoPrediction, people: list[dict], verdict: str, moved: bool, blur: bool):
    """Thumbnails in rows of COLUMNS, each over its expression strip and drop; the expressions' legend under."""
    columns = min(COLUMNS, len(people))
    rows = math.ceil(len(people) / columns)
    figure, axes = subplots(
        2 * rows,
        columns,
        squeeze=False,
        figsize=(PANEL_INCHES * columns, (PANEL_INCHES + 0.95) * rows),
        constrained_layout=True,
        gridspec_kw={"height_ratios": [PANEL_INCHES, 0.12] * rows},
    )
    end = max(video.duration_s, max(t for p in people for t in p["strip"]["times"]) + 0.1)
    step = sighting_step(video.people)
    for axis in axes.ravel():
        axis.set_axis_off()
    for number, record in enumerate(people):
        row, column = divmod(number, columns)
        image_axis, strip_axis = axes[2 * row, column], axes[2 * row + 1, column]
        thumbnail = video.thumbnails.get(record["id"])
        if thumbnail is not None:
            image_axis.imshow(_square(blurred_thumbnail(thumbnail) if blur else thumbnail), aspect="auto")
        rank = f"{number + 1}. " if moved else ""
        image_axis.set_title(f"{rank}person {record['id']}", fontsize=9)
        strip_axis.set_axis_on()
        draw_strip(strip_axis, record, 0, 1, step)
        strip_axis.set(xlim=(0, end), ylim=(0, 1), yticks=[], xticks=[0, end])
        strip_axis.set_xticklabels(["0", f"{end:.0f} s"], fontsize=6)
        strip_axis.tick_params(length=2, pad=1)
        lines = [f"mostly {record['top_expression']}"]
        if moved and record["drop_fused"] is not None:
            lines.append(drop_sentence(verdict, record["drop_fused"], record["id"]).replace(" without", "\nwithout"))
        strip_axis.set_xlabel("\n".join(lines), fontsize=7, labelpad=1)
    figure.legend(
        handles=expression_handles(),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(EXPRESSION_COLOURS),
        fontsize=8,
        frameon=False,
        title="strongest expression at each sampled frame",
        title_fontsize=8,
    )
    return figure


def _square(image: np.ndarray) -> np.ndarray:
    """``image`` (h, w, 3) centred on a white square (its panel is square; a crop cut by the frame's edge is not)."""
    height, width = image.shape[:2]
    side = max(height, width)
    out = np.full((side, side, 3), 255, dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    out[top : top + height, left : left + width] = image
    return out


def _group_figure(video: VideoPrediction):
    """People count (bars) and agreement (dots coloured by the dominant expression) at each window's centre."""
    windows = [w for w in video.windows if w.people is not None]
    centres = window_centres(video)[[i for i, w in enumerate(video.windows) if w.people is not None]]
    figure, (count_axis, agree_axis) = subplots(
        2, 1, sharex=True, figsize=(9, 3.4), gridspec_kw={"height_ratios": [1, 1.2], "hspace": 0.12}
    )
    width = 0.8 * float(np.median(np.diff(centres))) if len(centres) > 1 else 1.0
    count_axis.bar(centres, [w.people for w in windows], width=width, color="#59636e")
    count_axis.set_ylabel("people", fontsize=8)
    count_axis.yaxis.get_major_locator().set_params(integer=True)
    agreeing = [(c, w) for c, w in zip(centres, windows) if w.agreement is not None]
    if agreeing:
        xs = [c for c, _ in agreeing]
        agree_axis.plot(xs, [w.agreement for _, w in agreeing], color="#bdc3c7", linewidth=1, zorder=1)
        agree_axis.scatter(
            xs,
            [w.agreement for _, w in agreeing],
            c=[EXPRESSION_COLOURS.get(w.dominant, "black") for _, w in agreeing],
            edgecolors="black",
            linewidths=0.4,
            s=28,
            zorder=2,
        )
        shown = [name for name in EXPRESSION_COLOURS if any(w.dominant == name for _, w in agreeing)]
        agree_axis.legend(
            handles=expression_handles(shown), title="most common", fontsize=7, title_fontsize=7,
            loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False,
        )  # fmt: skip
    agree_axis.set_ylim(-0.05, 1.05)
    agree_axis.set_ylabel("agreement", fontsize=8)
    agree_axis.set_xlim(0, max(video.duration_s, float(centres.max()) + 0.1))
    agree_axis.set_xlabel("time (s), window centres")
    return figure
