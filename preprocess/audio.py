"""Audio embeddings on a fixed time grid: OpenL3 (the paper) or a built-in log-mel summary (no download).

One embedding every ``config.audio_hop`` seconds, centred at t = 0, hop, ..., ``config.audio_seconds``
(11 steps for 5 s at 0.5 s). Step k is real when its centre sample ``round(t_k * sr)`` is at most the number
of audio samples (a 2-s track has real steps at 0, 0.5, 1.0, 1.5, 2.0) and the track holds one 25-ms analysis
frame; later steps are zeros with mask False. The log-mel backend summarises only the audio inside the track (the
first and last steps see the half window the track has); OpenL3 embeds 1-s windows, zero-padded at the ends as
openl3 does. Clips without an audio track embed 5 s of silence (all steps real) and carry the flag "no audio
track". ``AudioExtractor.embed_track`` embeds every step of a whole track of any length on the same grid, a chunk of
steps at a time (memory bounded); its first steps are those ``extract`` gives for the track's first 5.5 s.

Backend "auto" is OpenL3 when the openl3 package and its weight file are installed, else log-mel (logged).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError

from .config import AUDIO_BACKENDS, PreprocessConfig
from .decode import DecodedClip
from .extractor import ModalityResult

log = logging.getLogger(__name__)

NO_AUDIO_FLAG = "no audio track"
LOG_EPS = 1e-10  # log(power + eps): silence embeds to finite values

# Built-in log-mel backend.
LOGMEL_SAMPLE_RATE = 16000
LOGMEL_WINDOW_SECONDS = 1.0  # each step summarises the part inside the track of a 1-s window centred on its time
FRAME_SECONDS = 0.025  # STFT analysis frame (Hann window)
FRAME_HOP_SECONDS = 0.010  # STFT hop
N_MELS = 64
N_DESCRIPTORS = 4  # log energy (log mean square) mean/std, spectral centroid (kHz) mean/std
LOGMEL_DIM = 2 * N_MELS + N_DESCRIPTORS

TRACK_CHUNK_STEPS = 240  # steps embedded per chunk of a whole track (2 min at hop 0.5 s): bounds the memory

# OpenL3 backend. "music" is OpenL3's default and, with mel256 / 6144, the setting the paper's numbers match;
# Cramer et al. (2019) also found the music-trained embedding at least as good on environmental sound tasks.
OPENL3_SAMPLE_RATE = 48000
OPENL3_PARAMS = {"input_repr": "mel256", "content_type": "music", "embedding_size": 6144}
# openl3's setup.py downloads the weights while installing (needs internet); --no-deps keeps our pins (it wants an old
# resampy); its dependencies come with requirements.txt.
OPENL3_INSTALL = "pip install --force-reinstall --no-deps openl3==0.4.2"
OPENL3_MISSING = (
    "audio backend 'openl3' needs the openl3 package, which is not installed; with internet, "
    f"`{OPENL3_INSTALL}` installs it with its model weights. Without it, use --audio-backend logmel "
    "(built-in log-mel features, no download)."
)
OPENL3_NO_WEIGHTS = (
    "audio backend 'openl3': openl3 is installed without its weights ({path} is missing; install.sh installs "
    f"openl3 from source without them). With internet, `{OPENL3_INSTALL}` downloads them while installing. "
    "Without them, use --audio-backend logmel or auto (built-in log-mel features)."
)


class AudioBackendError(InputError):
    """The requested audio backend cannot run here; the message says what to install or use instead."""


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f / 700).

    Parameters
    ----------
    hz : float or ndarray
        Frequencies in Hz.

    Returns
    -------
    mel : ndarray of the shape of ``hz``, float64
    """
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """HTK mel scale back to Hz (the inverse of hz_to_mel).

    Parameters
    ----------
    mel : float or ndarray

    Returns
    -------
    hz : ndarray of the shape of ``mel``, float64
    """
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_band_centres(n_mels: int, fmin: float = 0.0, fmax: float = 8000.0) -> np.ndarray:
    """(n_mels,) centre frequency in Hz of each band of ``mel_filterbank``.

    Parameters
    ----------
    n_mels : int
    fmin, fmax : float
        The lowest and highest frequency in Hz.

    Returns
    -------
    centres : ndarray of shape (n_mels,), float64
    """
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))[1:-1]


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters (peak 1) equally spaced on the HTK mel scale.

    Parameters
    ----------
    sample_rate : int
    n_fft : int
    n_mels : int
    fmin : float
    fmax : float or None
        In Hz; None for half the sample rate.

    Returns
    -------
    filters : ndarray of shape (n_mels, n_fft // 2 + 1), float32
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bin_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def step_mask(n_samples: int, sample_rate: int, hop: float, steps: int, first_step: int = 0) -> np.ndarray:
    """(steps,) bool for steps first_step, first_step + 1, ...: step k is real when its centre sample
    round(k * hop * sr) <= n_samples and the track holds at least one whole analysis frame (FRAME_SECONDS).

    Parameters
    ----------
    n_samples : int
        Length of the track.
    sample_rate : int
    hop : float
        Seconds between step centres.
    steps : int
    first_step : int

    Returns
    -------
    mask : ndarray of shape (steps,), bool
    """
    centres = np.round(np.arange(first_step, first_step + steps) * hop * sample_rate)
    return (centres <= n_samples) & (n_samples >= _frame_sizes(sample_rate)[0])


def track_steps(n_samples: int, sample_rate: int, hop: float) -> int:
    """Real steps of a track of ``n_samples`` (those ``step_mask`` calls real): 0 for an empty track.

    Parameters
    ----------
    n_samples : int
    sample_rate : int
    hop : float
        Seconds between step centres.

    Returns
    -------
    steps : int
    """
    return int(step_mask(n_samples, sample_rate, hop, int(n_samples // (hop * sample_rate)) + 2).sum())


def _frame_sizes(sample_rate: int) -> tuple[int, int]:
    """Analysis frame length and hop in samples."""
    return int(round(FRAME_SECONDS * sample_rate)), int(round(FRAME_HOP_SECONDS * sample_rate))


def _window_frames(
    n_samples: int, sample_rate: int, hop: float, steps: int, first_step: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, F) index of the analysis frames in each step's window, and (steps, F) bool: the frame lies wholly
    inside the track. Frame m holds samples m * frame_hop .. + frame_len; step k's window holds the F frames
    (1 s of frame hops) whose centres are nearest to its centre sample round(k * hop * sr) +- 0.5 s."""
    frame_len, frame_hop = _frame_sizes(sample_rate)
    half_window = int(round(LOGMEL_WINDOW_SECONDS * sample_rate / 2))
    centres = np.round(np.arange(first_step, first_step + steps) * hop * sample_rate)
    first = np.ceil((centres - half_window - frame_len / 2) / frame_hop).astype(np.int64)
    index = first[:, None] + np.arange(2 * half_window // frame_hop)
    track_frames = 1 + (n_samples - frame_len) // frame_hop if n_samples >= frame_len else 0
    return index, (index >= 0) & (index < track_frames)


def _frame_features(audio: np.ndarray, sample_rate: int, first: int, count: int) -> np.ndarray:
    """(count, N_MELS + 2) per analysis frame first .. first + count - 1 (wholly inside ``audio``): log-mel bands,
    log energy (log mean square) and spectral centroid (kHz)."""
    frame_len, frame_hop = _frame_sizes(sample_rate)
    segment = audio[first * frame_hop : (first + count - 1) * frame_hop + frame_len]
    frames = np.lib.stride_tricks.sliding_window_view(segment, frame_len)[::frame_hop]
    n_fft = int(2 ** np.ceil(np.log2(frame_len)))
    power = np.abs(np.fft.rfft(frames * np.hanning(frame_len).astype(np.float32), n=n_fft)) ** 2
    log_mel = np.log(power @ mel_filterbank(sample_rate, n_fft, N_MELS).T + LOG_EPS)
    log_energy = np.log(np.mean(frames**2, axis=1) + LOG_EPS)[:, None]
    bin_khz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate) / 1000.0
    centroid = ((power @ bin_khz) / (power.sum(axis=1) + LOG_EPS))[:, None]
    return np.concatenate([log_mel, log_energy, centroid], axis=1)


def _masked_mean_std(values: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over axis 1 of (steps, F, D) ``values`` where (steps, F) ``inside``: two (steps, D) arrays,
    zero for a step with no frame inside."""
    keep = inside[:, :, None]
    count = np.maximum(inside.sum(axis=1), 1)[:, None]
    mean = np.where(keep, values, 0.0).sum(axis=1) / count
    std = np.sqrt(np.where(keep, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / count)
    return mean, std


def logmel_embedding(
    audio: np.ndarray, sample_rate: int, hop: float = 0.5, steps: int = 11, first_step: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, LOGMEL_DIM) float32 summaries of 1-s windows centred every ``hop`` s, and the (steps,) real mask.

    Per window, over its 25-ms analysis frames that lie wholly inside the track (no padding: the first and last
    steps summarise the half window the track has): mean and std of the 64 log-mel bands, then mean and std of the
    frame log energy (log mean square) and of the spectral centroid (kHz). One STFT for the steps asked for.
    ``first_step`` > 0 embeds steps first_step .. first_step + steps - 1 of the track's grid (centred at
    first_step * hop, ...): the same values as those rows of an embedding from step 0.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,), float32
        Mono, in [-1, 1].
    sample_rate : int
    hop : float
        Seconds between step centres.
    steps : int
    first_step : int

    Returns
    -------
    features : ndarray of shape (steps, LOGMEL_DIM), float32
    mask : ndarray of shape (steps,), bool
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    mask = step_mask(audio.size, sample_rate, hop, steps, first_step)
    features = np.zeros((steps, LOGMEL_DIM), dtype=np.float32)
    if not mask.any():
        return features, mask
    index, inside = _window_frames(audio.size, sample_rate, hop, steps, first_step)  # a real step has frames inside
    first, last = index[inside].min(), index[inside].max()
    per_frame = _frame_features(audio, sample_rate, first, last - first + 1)
    windows = per_frame[np.clip(index - first, 0, last - first)]  # (steps, F, N_MELS + 2)
    mean, std = _masked_mean_std(windows, inside)
    energy_centroid = np.stack([mean[:, N_MELS], std[:, N_MELS], mean[:, N_MELS + 1], std[:, N_MELS + 1]], axis=1)
    features[mask] = np.concatenate([mean[:, :N_MELS], std[:, :N_MELS], energy_centroid], axis=1)[mask]
    return features, mask


def _import_openl3():
    try:
        return importlib.import_module("openl3")
    except ImportError as error:
        if getattr(error, "name", None) == "openl3":
            raise AudioBackendError(OPENL3_MISSING) from error
        raise AudioBackendError(
            f"openl3 is installed but does not import ({error}); fix its dependencies or use "
            "--audio-backend logmel (built-in log-mel features, no download)."
        ) from error


def _openl3_weights(openl3) -> Path:
    """Where the installed openl3 keeps the weight file of the OPENL3_PARAMS audio model."""
    return Path(
        openl3.models.get_audio_embedding_model_path(OPENL3_PARAMS["input_repr"], OPENL3_PARAMS["content_type"])
    )


def _load_openl3_model(openl3):
    """The OpenL3 audio model (OPENL3_PARAMS); AudioBackendError naming the weight file when it cannot be read."""
    try:
        return openl3.models.load_audio_embedding_model(**OPENL3_PARAMS)
    except OSError as error:  # h5py: FileNotFoundError for a missing weight file
        weights = _openl3_weights(openl3)
        if not weights.is_file():
            raise AudioBackendError(OPENL3_NO_WEIGHTS.format(path=weights)) from error
        raise AudioBackendError(
            f"openl3 weight file {weights} could not be read ({error}); reinstall it with `{OPENL3_INSTALL}` "
            "(needs internet) or use --audio-backend logmel."
        ) from error


def resolve_backend(name: str) -> str:
    """'auto' -> 'openl3' when the package and its weight file are installed, else 'logmel' (logged, saying why);
    'openl3' and 'logmel' as given; unknown names raise InputError.

    Parameters
    ----------
    name : str
        One of AUDIO_BACKENDS.

    Returns
    -------
    backend : str
        "openl3" or "logmel".
    """
    if name not in AUDIO_BACKENDS:
        raise InputError(
            f"unknown audio backend {name!r}; choose {', '.join(AUDIO_BACKENDS[:-1])} or {AUDIO_BACKENDS[-1]}"
        )
    if name != "auto":
        return name
    try:
        openl3 = _import_openl3()
    except AudioBackendError as error:  # not installed is the usual case; a broken install is worth a warning
        log.log(
            logging.INFO if str(error) == OPENL3_MISSING else logging.WARNING, "audio backend auto: logmel (%s)", error
        )
        return "logmel"
    weights = _openl3_weights(openl3)
    if not weights.is_file():
        log.warning(
            "audio backend auto: logmel, because openl3 is installed without its weights (%s is missing); "
            "with internet, `%s` downloads them",
            weights,
            OPENL3_INSTALL,
        )
        return "logmel"
    return "openl3"


class AudioExtractor:
    """Audio embeddings per clip; the OpenL3 model (if used) is loaded once here."""

    modality = "audio"

    def __init__(self, config: PreprocessConfig) -> None:
        self.hop = config.audio_hop
        self.steps = config.audio_steps
        self.seconds = config.audio_seconds
        self.backend = resolve_backend(config.audio_backend)
        if self.backend == "openl3":
            openl3 = _import_openl3()
            self._openl3 = openl3
            self._model = _load_openl3_model(openl3)
            self.sample_rate = OPENL3_SAMPLE_RATE
            self.resolved = {
                "backend": "openl3",
                "dim": OPENL3_PARAMS["embedding_size"],
                **OPENL3_PARAMS,
                "hop_size": self.hop,
                "center": True,
                "sample_rate": self.sample_rate,
            }
        else:
            self.sample_rate = LOGMEL_SAMPLE_RATE
            self.resolved = {
                "backend": "logmel",
                "dim": LOGMEL_DIM,
                "sample_rate": self.sample_rate,
                "n_mels": N_MELS,
                "mel_scale": "htk",
                "fmin": 0.0,
                "fmax": self.sample_rate / 2,
                "frame_seconds": FRAME_SECONDS,
                "frame_hop_seconds": FRAME_HOP_SECONDS,
                "window_seconds": LOGMEL_WINDOW_SECONDS,
                "log_eps": LOG_EPS,
                "summary": "log-mel mean+std per band, log energy mean+std, centroid kHz mean+std",
            }

    def extract(self, clip: DecodedClip) -> ModalityResult:
        """(steps, dim) features and (steps,) mask; a clip without audio embeds silence and is flagged.

        Parameters
        ----------
        clip : DecodedClip
            Audio decoded at ``self.sample_rate`` (or none).

        Returns
        -------
        result : ModalityResult
            ``features`` (steps, dim) float32 and ``mask`` (steps,) bool.
        """
        flags = []
        if clip.audio is None:
            audio = np.zeros(int(round(self.seconds * self.sample_rate)), dtype=np.float32)
            flags.append(NO_AUDIO_FLAG)
        elif clip.sample_rate != self.sample_rate:
            raise ValueError(
                f"{clip.path}: audio decoded at {clip.sample_rate} Hz but the {self.backend} backend "
                f"needs {self.sample_rate} Hz; decode with sample_rate=extractor.sample_rate"
            )
        else:
            audio = clip.audio
        if self.backend == "openl3":
            features, mask = self._openl3_embedding(audio)
        else:
            features, mask = logmel_embedding(audio, self.sample_rate, self.hop, self.steps)
        return ModalityResult({"features": features, "mask": mask}, flags)

    def embed_track(self, audio: np.ndarray, chunk_steps: int = TRACK_CHUNK_STEPS) -> np.ndarray:
        """(track_steps, dim) float32: every real step of a whole track of any length, centred at 0, hop, ...

        Computed ``chunk_steps`` steps at a time, so memory does not grow with the track beyond the track itself.
        Step k sees the track's real audio on both sides of its centre; rows 0 .. steps - 1 equal what ``extract``
        gives a clip whose audio is this track (cut at audio_seconds + hop, as preprocessing decodes it).

        Parameters
        ----------
        audio : ndarray of shape (n_samples,), float32
            The whole track, mono, at ``self.sample_rate``.
        chunk_steps : int
            Steps computed at a time.

        Returns
        -------
        features : ndarray of shape (track_steps, dim), float32
        """
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        total = track_steps(audio.size, self.sample_rate, self.hop)
        dim = self.resolved["dim"]
        features = np.zeros((total, dim), dtype=np.float32)
        for first in range(0, total, max(1, chunk_steps)):
            steps = min(max(1, chunk_steps), total - first)
            if self.backend == "openl3":
                features[first : first + steps] = self._openl3_steps(audio, first, steps)
            else:
                features[first : first + steps] = logmel_embedding(audio, self.sample_rate, self.hop, steps, first)[0]
        return features

    def _openl3_steps(self, audio: np.ndarray, first_step: int, steps: int) -> np.ndarray:
        """(steps, dim) OpenL3 embeddings of steps first_step .. of the track: the 1-s window around each step
        (zeros outside the track), framed as OpenL3 frames with center=True, passed with center=False."""
        half = self.sample_rate // 2  # OpenL3 embeds 1-s windows
        hop = int(self.hop * self.sample_rate)  # OpenL3's own rounding of the hop
        start = first_step * hop - half
        segment = np.zeros((steps - 1) * hop + 2 * half, dtype=np.float32)
        low, high = max(0, start), min(audio.size, start + segment.size)
        if high > low:
            segment[low - start : high - start] = audio[low:high]
        embedding, _ = self._openl3.get_audio_embedding(
            segment, self.sample_rate, model=self._model, hop_size=self.hop, center=False, verbose=False
        )
        return np.asarray(embedding[:steps], dtype=np.float32)

    def _openl3_embedding(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # OpenL3 (center=True) emits a frame at t only while its 1-s window (t +- 0.5 s) ends inside the track:
        # zero-pad to the last grid step + 0.5 s, keep the grid, mask the steps beyond the real audio.
        needed = int(round(((self.steps - 1) * self.hop + 0.5) * self.sample_rate))
        padded = np.pad(audio, (0, max(0, needed - audio.size)))
        embedding, _ = self._openl3.get_audio_embedding(
            padded, self.sample_rate, model=self._model, hop_size=self.hop, center=True, verbose=False
        )
        features = np.asarray(embedding[: self.steps], dtype=np.float32)
        mask = step_mask(audio.size, self.sample_rate, self.hop, self.steps)
        features[~mask] = 0.0
        return features, mask
