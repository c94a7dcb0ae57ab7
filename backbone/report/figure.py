"""Pictures in reports (the drills' timelines, the tier drill's, the quarterly rotation's):
matplotlib set up once for files only (no display on CI machines), and the timelines'
common ending. Imported only where a picture is drawn: nothing else loads matplotlib."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["finish", "plt"]


def finish(fig, ax, path: Path) -> Path:
    """The timelines' common ending: legend beside the plot, a time grid, the file written."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
