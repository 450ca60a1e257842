"""Section 6: which sounds of the window the audio model used.

The window's audio is drawn as a waveform and a log-mel spectrogram; under them, on the same time axis, each
audio step's share of the audio model's SmoothGrad saliency (saliency.maps), and what removing that step alone
(its embedding set to the padding the model masks) does to the audio model's and the fused probability of the
explained class. The steps whose removal lowers the audio model's probability most are the key sounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gvs.core.figures import subplots
from gvs.predict.predictor import FUSED
from preprocess.audio import mel_filterbank
from saliency.maps import real_steps, smoothgrad, step_saliency

from .sections import Figure, Section, Table, png_bytes
from .window import ExplainedWindow

KEY_STEPS = 3  # audio steps listed in the table and marked on the figure
N_MELS = 64
STFT_SECONDS = 0.032  # analysis frame of the drawn spectrogram (Hann window), hop a quarter of it
MIN_DROP = 0.01  # a step whose removal lowers the audio model's probability less than this is not a key step
TOP_DB = 80.0  # the spectrogram's colours span this many dB below its loudest cell
SOURCES = ("audio", FUSED)  # probabilities whose drops are read


@dataclass
class AudioSteps:
    """What each audio step of the window does for the explained class.

    times : (steps,) seconds of each step's centre from the start of the video
    real : (steps,) bool, False for padding steps (past the track's end)
    saliency : (steps,) share of the audio model's |SmoothGrad| per step (sums to 1 over the steps; zero when flat)
    drops : {"audio" / "fused": (steps,) probability of the class unchanged minus with that step alone removed}
    ranking : (n_real,) real step indices by the audio model's drop, largest first
    """

    times: np.ndarray
    real: np.ndarray
    saliency: np.ndarray
    drops: dict[str, np.ndarray]
    ranking: np.ndarray


def audio_steps(window: ExplainedWindow, samples: int = 16, seed: int = 0) -> AudioSteps:
    """SmoothGrad share (``samples`` noisy copies, ``seed``) and leave-one-step-out drops of every audio step;
    the drops come from one batched ``window.score`` call (row 0 unchanged, row 1 + i without step i)."""
    x = window.window.features["audio"].astype(np.float32)
    totals = step_saliency(
        smoothgrad(window.predictor.bundle.model("audio"), x, window.class_index, samples, seed=seed)
    )
    saliency = totals / totals.sum() if totals.sum() > 0 else np.zeros_like(totals)
    copies = np.repeat(x[None], len(x) + 1, axis=0)
    copies[np.arange(1, len(x) + 1), np.arange(len(x))] = 0.0
    scores = window.score({"audio": copies})
    c = window.class_index
    drops = {s: scores[s][0, c] - scores[s][1:, c] for s in SOURCES}
    real = real_steps(x)
    ranking = np.flatnonzero(real)[np.argsort(-drops["audio"][real], kind="stable")]
    return AudioSteps(window.audio_step_times(), real, saliency, drops, ranking)


def log_mel(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, N_MELS) log-mel power in dB of mono ``audio`` (samples,) and (frames,) each frame's centre in
    seconds from the first sample (numpy STFT, Hann window of STFT_SECONDS, hop a quarter of it)."""
    length = int(round(STFT_SECONDS * sample_rate))
    hop = length // 4
    padded = np.pad(np.asarray(audio, np.float32), (0, max(0, length - len(audio))))
    frames = np.lib.stride_tricks.sliding_window_view(padded, length)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(length), n=length)) ** 2
    mel = power @ mel_filterbank(sample_rate, length, N_MELS).T
    return 10 * np.log10(mel + 1e-10), (np.arange(len(frames)) * hop + length / 2) / sample_rate


def audio_section(window: ExplainedWindow, samples: int = 16) -> Section:
    """Section "audio": waveform, log-mel spectrogram, per-step saliency (SmoothGrad over ``samples`` noisy
    copies) and drops; a table of the key steps. A window without an audio track (or a bundle without an audio
    model) gives a section that says so."""
    missing = _missing(window)
    if missing:
        return Section("audio", "Which sounds", missing)
    result = audio_steps(window, samples)
    c, name = window.class_index, window.class_name
    rows = [
        [
            f"{result.times[i]:.1f}",
            f"{result.saliency[i]:.0%}",
            f"{result.drops['audio'][i]:+.3f}",
            f"{result.drops[FUSED][i]:+.3f}",
        ]
        for i in result.ranking[:KEY_STEPS]
    ]
    return Section(
        "audio",
        "Which sounds",
        _text(result, window),
        figures=[Figure("audio", png_bytes(_figure(result, window)), f"The window's sound and what drives p({name})")],
        tables=[
            Table(
                ["step centre (s)", "share of saliency", f"audio p({name}) drop", f"fused p({name}) drop"],
                rows,
                f"The {len(rows)} audio steps whose removal lowers the audio model's p({name}) most "
                f"(audio model p({name}) = {window.prediction.probabilities['audio'][c]:.2f})",
            )
        ],
        caveat="Each step is an embedding of about a second of sound centred on its time, so neighbouring steps "
        "overlap and a sound spans several of them. Removing a step replaces it by padding, which the model saw in "
        "training only at the end of short clips. Saliency is a local gradient: a step can have a large saliency and "
        "a small drop (or the reverse).",
        arrays={"step_times": result.times, "saliency": result.saliency, "ranking": result.ranking}
        | {f"drops_{s}": d for s, d in result.drops.items()},
    )


def _missing(window: ExplainedWindow) -> str:
    """Why the section has nothing to show ('' when it has)."""
    if "audio" not in window.modalities:
        return "The model has no audio modality, so no sound is explained."
    if (
        window.window.raw is None
        or window.window.raw.audio is None
        or not real_steps(window.window.features["audio"]).any()
    ):
        return (
            "This video has no audio track (or none under the explained window), so there is no sound to explain; "
            "the fused prediction is made from the other modalities."
        )
    return ""


def _text(result: AudioSteps, window: ExplainedWindow) -> str:
    """How to read the figure, naming the key step (or saying that no step is one)."""
    name, keys = window.class_name, _key_steps(result)
    text = (
        "The top rows show the window's sound: the waveform and a log-mel spectrogram (bright = loud at that "
        "pitch). The bars under them are the audio model's audio steps (one embedding every "
        f"{window.predictor.stream.config.audio_hop:g} s, centred on its bar): their share of the model's "
        f"SmoothGrad saliency for {name}, then the drop in p({name}) when that step alone is removed, for the "
        f"audio model and for the fused prediction. Shaded on the waveform: the (up to {KEY_STEPS}) steps whose "
        f"removal lowers the audio model's probability most, by at least {MIN_DROP:g}.\n\n"
    )
    if len(keys):
        top = int(keys[0])
        text += (
            f"The key step is centred at {result.times[top]:.1f} s: without it the audio model's p({name}) drops "
            f"by {result.drops['audio'][top]:+.3f} and the fused one by {result.drops[FUSED][top]:+.3f}."
        )
    else:
        text += (
            f"No single step lowers the audio model's p({name}) by {MIN_DROP:g} or more: it uses the sound as a "
            "whole, or hardly at all, so the table's ranking means little."
        )
    if "audio" not in window.present:
        text += " (The fused probability does not use the audio in this window.)"
    return text


def _key_steps(result: AudioSteps) -> np.ndarray:
    """Indices of the (up to KEY_STEPS) top-ranked steps whose removal lowers the audio model's probability by at
    least MIN_DROP."""
    top = result.ranking[:KEY_STEPS]
    return top[result.drops["audio"][top] >= MIN_DROP]


def _figure(result: AudioSteps, window: ExplainedWindow):
    """Matplotlib figure, one shared time axis (seconds of the video): waveform with the key steps shaded,
    log-mel spectrogram, saliency share per step, drops per step (audio model and fused)."""
    raw, hop = window.window.raw, window.predictor.stream.config.audio_hop
    times = raw.audio_start_s + np.arange(len(raw.audio)) / raw.sample_rate
    figure, axes = subplots(
        4, 1, figsize=(10, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.4, 1, 1.1]}, constrained_layout=True
    )
    axes[0].plot(times, raw.audio, linewidth=0.4, color="steelblue")
    for i in _key_steps(result):
        axes[0].axvspan(result.times[i] - hop / 2, result.times[i] + hop / 2, color="#f39c12", alpha=0.3)
    axes[0].set_ylabel("waveform")
    decibels, centres = log_mel(raw.audio, raw.sample_rate)
    image = axes[1].imshow(
        decibels.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=decibels.max() - TOP_DB,
        extent=(raw.audio_start_s + centres[0], raw.audio_start_s + centres[-1], 0, N_MELS),
    )
    axes[1].set_ylabel("mel band")
    figure.colorbar(image, ax=axes[1], pad=0.01, label="dB")
    colours = np.where(result.real, "#16a085", "lightgrey")
    axes[2].bar(result.times, result.saliency, width=0.85 * hop, color=colours)
    axes[2].set_ylabel("share of\nsaliency")
    width = 0.4 * hop
    bars = ((-width / 2, "audio", "#c0392b", "audio model"), (width / 2, FUSED, "#7f8c8d", "fused"))
    for offset, source, colour, label in bars:
        axes[3].bar(result.times + offset, result.drops[source], width=width, color=colour, label=label)
    axes[3].axhline(0, color="black", linewidth=0.6)
    limit = 1.15 * max(*(float(np.abs(d).max()) for d in result.drops.values()), 2 * MIN_DROP)
    axes[3].set_ylim(-limit, limit)
    axes[3].set_ylabel(f"drop in\np({window.class_name})")
    axes[3].legend(fontsize=8)
    axes[3].set_xlabel("seconds from the start of the video (bar = one audio step, centred on its time)")
    return figure
