"""What the report's sections and plots share (``report.py``, ``report_abtest.py``, ``report_coldstart.py``):
matplotlib drawing to files only, axes labelled and figures saved one way, and the paper's figures as text."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

# Files only, never a display: set before any figure exists (importing pyplot first is fine, drawing is not).
matplotlib.use("Agg")


def paper_change(value: float | None) -> str:
    """A % change of the paper's, as the report's tables print it (``-`` where the paper gives none)."""
    return "-" if value is None else f"{value:+.1f}%"


def label_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def save_figure(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
