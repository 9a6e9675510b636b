"""Trajectory plot: true vs predicted centroid height of the clip, and the live simulation with the gripper."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["trajectory_plot"]


def trajectory_plot(path: str, fps: float, predicted_heights: np.ndarray, observed: int,
                    true_heights: np.ndarray | None = None, start: int = 0,
                    live: tuple[np.ndarray, np.ndarray] | None = None,
                    closed_spans: list[tuple[float, float]] | None = None) -> str:
    """PNG with (left) centroid height of the clip: ground truth vs re-simulated / predicted (T,) over clip time,
    the observed window shaded; (right, when `live` = (times s, heights m) is given) the simulation node's
    centroid height during the gripper interaction, spans with the gripper closed shaded."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    predicted_heights = np.asarray(predicted_heights, dtype=float)
    if predicted_heights.ndim != 1 or len(predicted_heights) == 0 or not fps > 0:
        raise ValueError(f"predicted_heights must be a non-empty (T,) array and fps > 0, got "
                         f"{predicted_heights.shape} and {fps}")
    panels = 2 if live is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.6), squeeze=False)
    ax = axes[0, 0]
    t = (start + np.arange(len(predicted_heights))) / fps
    ax.axvspan(t[0], (start + observed - 0.5) / fps, color="0.9", label="observed (reconstructed from)")
    if true_heights is not None:
        ax.plot(t[:len(true_heights)], true_heights[:len(t)], "k-o", ms=3, label="ground truth")
    n = min(observed, len(t))
    ax.plot(t[:n], predicted_heights[:n], "-s", color="#4682e6", ms=3, label="re-simulated")
    ax.plot(t[n - 1:], predicted_heights[n - 1:], "-^", color="#f08c1e", ms=3, label="predicted future")
    ax.set_xlabel("clip time (s)")
    ax.set_ylabel("centroid height (m)")
    ax.set_title("falling clip: true vs predicted")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    if live is not None:
        ax = axes[0, 1]
        times, heights = (np.asarray(a, dtype=float) for a in live)
        for i, (a, b) in enumerate(closed_spans or []):
            ax.axvspan(a, b, color="#fbd5d5", label="gripper closed" if i == 0 else None)
        ax.plot(times, heights, "-", color="#4682e6", label="simulation node")
        ax.set_xlabel("wall time since the asset loaded (s)")
        ax.set_ylabel("centroid height (m)")
        ax.set_title("simulation: drop, grab, lift, shake, drop")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
