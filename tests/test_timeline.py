"""The timeline of `gvs predict`, `gvs report` and `gvs serve`: lines at 0 and 1 visible inside the plot, thumbnails
labelled with the window centres the x axis shows, the title naming the video as it is given, and the windows
unlike the training data shaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gvs.predict.predictor import FUSED, VideoPrediction, WindowPrediction
from gvs.predict.timeline import timeline_figure, timeline_png, unfamiliar_spans, window_centres


def _saturated_video(windows: int = 7, name: str = "party, take 2.mp4") -> VideoPrediction:
    """A 2.2-s-stride video whose every window says Negative 1.00 (the demo bundle on real clips)."""
    rng = np.random.default_rng(0)
    made = [
        WindowPrediction(
            i,
            2.2 * i,
            2.2 * i + 4.4,
            {FUSED: np.array([0.0, 0.0, 1.0])},
            ["scene"],
            thumbnail=rng.integers(0, 255, (90, 160, 3), dtype=np.uint8),
        )
        for i in range(windows)
    ]
    return VideoPrediction(
        Path(name), "done", made, np.array([0.0, 0.0, 1.0]), {"Negative": 1.0}, duration_s=2.2 * windows + 2.2
    )


@pytest.fixture(scope="module")
def figure():
    import matplotlib.pyplot as plt

    made = timeline_figure(_saturated_video(), thumbnails=4)
    yield made
    plt.close(made)


def test_lines_at_0_and_1_lie_inside_the_plot(figure):
    plot = figure.axes[-1]
    low, high = plot.get_ylim()
    values = np.concatenate([line.get_ydata() for line in plot.get_lines() if len(line.get_xdata()) > 2])
    assert set(values) == {0.0, 1.0}
    assert low < 0.0 and high > 1.0 and min(-low, high - 1) >= 0.02  # a margin the lines' width fits in


def test_thumbnails_are_labelled_with_the_centres_the_axis_shows(figure):
    video = _saturated_video()
    centres = window_centres(video)
    plot, thumbnails = figure.axes[-1], figure.axes[:-1]
    assert len(thumbnails) == 4 and "window centres" in plot.get_xlabel()
    curve_x = next(line.get_xdata() for line in plot.get_lines() if len(line.get_xdata()) > 2)
    np.testing.assert_allclose(curve_x, centres)
    labelled = [float(axis.get_title().split(" s:")[0]) for axis in thumbnails]
    marked = [line.get_xdata()[0] for line in plot.get_lines() if len(line.get_xdata()) == 2]  # the dotted lines
    np.testing.assert_allclose(labelled, np.round(centres[[0, 2, 4, 6]], 1))
    np.testing.assert_allclose(marked, centres[[0, 2, 4, 6]])


def test_the_title_names_the_video_as_given(figure):
    assert figure._suptitle.get_text().startswith("party, take 2.mp4: Negative (1.00)")
    assert timeline_png(_saturated_video(2), thumbnails=0).startswith(b"\x89PNG")


def test_windows_unlike_the_training_data_are_shaded_with_a_legend_entry():
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    video = _saturated_video()
    for index in (1, 2, 5):  # windows 1 and 2 overlap: one span; window 5 alone
        video.windows[index].unfamiliar = ["scene"]
    assert unfamiliar_spans(video) == [(2.2, 2.2 * 2 + 4.4), (2.2 * 5, 2.2 * 5 + 4.4)]
    made = timeline_figure(video, thumbnails=0)
    plot = made.axes[-1]
    shaded = [p for p in plot.patches if isinstance(p, Rectangle)]
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in shaded]
    np.testing.assert_allclose(spans, unfamiliar_spans(video))
    labels = [text.get_text() for text in plot.get_legend().get_texts()]
    assert labels.count("unlike the training data (scene)") == 1
    plt.close(made)
    unshaded = timeline_figure(_saturated_video(2), thumbnails=0)
    assert not unshaded.axes[-1].patches and "unlike" not in " ".join(
        t.get_text() for t in unshaded.axes[-1].get_legend().get_texts()
    )
    plt.close(unshaded)
