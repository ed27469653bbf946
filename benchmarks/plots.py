"""PNG plots of benchmark results (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def _save(fig, ax, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Label, grid and legend the axes, write the figure to ``path`` and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_cdf(runs: list[tuple[str, list[float]]], path: Path, title: str) -> Path:
    """One cumulative distribution line per run (label, latencies in seconds)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, latencies in runs:
        ordered = sorted(latencies)
        if not ordered:
            continue
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.plot(ordered, ys, label=label)
    return _save(fig, ax, path, title, "Kafka -> silver visibility latency (s)", "fraction of events")


def bars(labels: list[str], series: dict[str, list[float]], path: Path, title: str, ylabel: str) -> Path:
    """Grouped bars: one group per label, one bar per series."""
    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def series(lines: dict[str, list[float]], path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """One line per named series, plotted against its index (minute, batch, day...)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, values in lines.items():
        ax.plot(range(len(values)), values, marker=".", label=name)
    return _save(fig, ax, path, title, xlabel, ylabel)
