"""The B4 plot: requests made while waiting for N jobs, per-job loops against the shared loop."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def plot_requests(points: Mapping[str, Mapping[int, float]], path: Path, *, subtitle: str) -> None:
    """``points`` maps a line's label to {number of jobs: requests}."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=110)
    for (label, series), marker in zip(points.items(), "os^", strict=False):
        sizes = sorted(series)
        axes.plot(sizes, [series[n] for n in sizes], marker=marker, label=label)
        for n in sizes:
            axes.annotate(
                f"{series[n]:,.0f}",
                (n, series[n]),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize=8,
            )
    axes.set_xlabel("jobs waited for")
    axes.set_ylabel("requests received by the server")
    axes.set_title(f"B4: requests to wait for N jobs\n{subtitle}", fontsize=10)
    axes.margins(x=0.1, y=0.08)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
