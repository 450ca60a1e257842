"""A small labelled dataset in the VGAF layout, made from synthetic scenes and tones plus real people images
that installed packages ship (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper), so every
command runs on a fresh machine without a dataset. Its classes are separable by design: it checks plumbing,
not accuracy."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import cv2
import numpy as np

from gvs.core.io import atomic_write_text
from gvs.core.vocabulary import CLASS_NAMES

WIDTH, HEIGHT, FPS, SECONDS, SAMPLE_RATE = 768, 432, 25, 5.0, 22050
SPLIT_SIZES = {"Train": 6, "Val": 3}  # clips per class; Test gets TEST_CLIPS unlabelled clips
TEST_CLIPS = 3


def _people_images() -> dict[str, np.ndarray]:
    """Real RGB portraits shipped by installed packages, cropped to the person."""
    import matplotlib.cbook
    import skimage.data

    hopper = cv2.cvtColor(
        cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.COLOR_BGR2RGB
    )
    camera = np.repeat(skimage.data.camera()[:, 40:400, None], 3, axis=2)
    return {"astronaut": skimage.data.astronaut()[:, 60:420], "hopper": hopper[:, 60:460], "camera": camera}


# Per class: background colours (top, bottom), who appears, how many, and the audio recipe.
CLASS_SCENES = {
    "Positive": {
        "colours": ((255, 200, 60), (255, 120, 40)),
        "person": "astronaut",
        "people": (2, 3),
        "tones": (523.3, 659.3, 784.0),
        "noise": 0.02,
        "beat": 4.0,
    },
    "Neutral": {
        "colours": ((150, 160, 170), (110, 120, 130)),
        "person": "hopper",
        "people": (1, 2),
        "tones": (220.0,),
        "noise": 0.01,
        "beat": 0.0,
    },
    "Negative": {
        "colours": ((60, 10, 20), (20, 0, 40)),
        "person": "camera",
        "people": (2, 3),
        "tones": (110.0, 116.5),
        "noise": 0.25,
        "beat": 1.5,
    },
}


def _background(colours, rng: np.random.Generator) -> np.ndarray:
    jitter = rng.integers(-25, 26, size=3)
    top, bottom = (np.clip(np.array(c) + jitter, 0, 255) for c in colours)
    ramp = np.linspace(0, 1, HEIGHT)[:, None, None]
    return np.broadcast_to(top * (1 - ramp) + bottom * ramp, (HEIGHT, WIDTH, 3)).astype(np.float32)


def _frames(class_name: str, people: dict[str, np.ndarray], rng: np.random.Generator):
    """Yield the RGB frames of one clip: a gradient, drifting shapes and a few pasted people."""
    recipe = CLASS_SCENES[class_name]
    background = _background(recipe["colours"], rng)
    count = int(rng.integers(recipe["people"][0], recipe["people"][1] + 1))
    size = int(rng.integers(210, 250))
    person = cv2.resize(people[recipe["person"]], (size * 9 // 10, size), interpolation=cv2.INTER_AREA)
    slots = np.linspace(20, WIDTH - person.shape[1] - 20, count).astype(int)
    shapes = rng.uniform([0, 0, 10], [WIDTH, HEIGHT, 40], size=(6, 3))
    velocity = rng.normal(0, 4, size=(6, 2))
    for index in range(int(FPS * SECONDS)):
        frame = background.copy()
        for (x, y, radius), (dx, dy) in zip(shapes, velocity):
            centre = (int(x + dx * index) % WIDTH, int(y + dy * index) % HEIGHT)
            cv2.circle(frame, centre, int(radius), (255, 255, 255), -1)
        for slot in slots:
            top = HEIGHT - person.shape[0] - 10 + int(4 * np.sin(index / 5 + slot))
            frame[top : top + person.shape[0], slot : slot + person.shape[1]] = person
        yield frame.astype(np.uint8)


def _audio(class_name: str, rng: np.random.Generator) -> np.ndarray:
    recipe = CLASS_SCENES[class_name]
    t = np.arange(int(SAMPLE_RATE * SECONDS)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * f * rng.uniform(0.98, 1.02) * t) for f in recipe["tones"]) / len(recipe["tones"])
    if recipe["beat"]:
        tone *= 0.5 + 0.5 * (np.sin(2 * np.pi * recipe["beat"] * t) > 0)
    signal = 0.3 * tone + recipe["noise"] * rng.standard_normal(t.size)
    return np.clip(signal, -1, 1).astype(np.float32)


def write_clip(path: Path, frames, audio: np.ndarray | None) -> None:
    """Write an H.264/AAC mp4 (mp4v video muxed with AAC audio through imageio-ffmpeg's ffmpeg binary).

    Parameters
    ----------
    path : Path
        The mp4 to write; its folder is made.
    frames : iterable of ndarray of shape (HEIGHT, WIDTH, 3), uint8 RGB
    audio : ndarray of shape (n_samples,), float in [-1, 1], or None
        Mono at SAMPLE_RATE; None writes no audio track.
    """
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    silent = path.with_name(path.stem + ".video.mp4")
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(silent)]
    if audio is not None:
        sound = path.with_name(path.stem + ".wav")
        with wave.open(str(sound), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(SAMPLE_RATE)
            handle.writeframes((audio * 32767).astype("<i2").tobytes())
        command += ["-i", str(sound), "-c:a", "aac", "-shortest"]
    partial = path.with_name(path.stem + ".part.mp4")
    subprocess.run(command + ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(partial)], check=True)
    partial.replace(path)
    silent.unlink()
    if audio is not None:
        sound.unlink()


def make_demo(root: str | Path = "data/demo", seed: int = 0, force: bool = False) -> Path:
    """Write the demo dataset (Train 6, Val 3 clips per class, Test 3 unlabelled) unless it is already complete.

    Parameters
    ----------
    root : str or Path
        The dataset folder.
    seed : int
    force : bool
        Rewrite a complete dataset.

    Returns
    -------
    root : Path
    """
    root = Path(root)
    if (root / "COMPLETE").is_file() and not force:
        return root
    shutil.rmtree(root, ignore_errors=True)
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    people = _people_images()
    total = sum(per_class * len(CLASS_NAMES) for per_class in SPLIT_SIZES.values()) + TEST_CLIPS
    bar = tqdm(total=total, unit="clip", desc="demo dataset")
    for split, per_class in SPLIT_SIZES.items():
        lines = ["Vid_name Label"]
        for number in range(per_class * len(CLASS_NAMES)):
            class_index = number % len(CLASS_NAMES)
            name = f"{number // len(CLASS_NAMES) + 1}_{class_index + 1}"
            class_name = CLASS_NAMES[class_index]
            write_clip(root / split / f"{name}.mp4", _frames(class_name, people, rng), _audio(class_name, rng))
            bar.update()
            lines.append(f"{name} {class_index + 1}")
        atomic_write_text(root / f"{split}_labels.txt", "\n".join(lines) + "\n")
    for number in range(1, TEST_CLIPS + 1):
        class_name = CLASS_NAMES[(number - 1) % len(CLASS_NAMES)]
        write_clip(root / "Test" / f"Test_{number}.mp4", _frames(class_name, people, rng), _audio(class_name, rng))
        bar.update()
    bar.close()
    atomic_write_text(root / "COMPLETE", "demo dataset complete\n")
    return root
