"""`RUN/loss.png`: train and validation loss against tokens seen."""

from __future__ import annotations

import os
import warnings

from tinygpt.fileio import atomic_write


def plot_losses(records: list[dict], path: str, title: str = "") -> bool:
    """Draws the "train" and "val" records of a run's metrics. Returns False (with a warning
    once) when matplotlib is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except Exception as e:  # pragma: no cover - matplotlib is a dependency
        warnings.warn(f"no loss plot: matplotlib could not be loaded ({e})", RuntimeWarning, stacklevel=2)
        return False
    train = [(r["tokens"], r["loss"]) for r in records if r.get("kind") == "train"]
    val = [(r["tokens"], r["val_loss"]) for r in records if r.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    try:
        if train:
            ax.plot(*zip(*train), color="tab:blue", alpha=0.35, linewidth=1, label="train (logged steps)")
            if len(train) >= 10:  # a running mean shows the trend through the noise
                k = max(2, len(train) // 25)
                xs = [t for t, _ in train[k - 1:]]
                ys = [sum(v for _, v in train[i - k + 1:i + 1]) / k for i in range(k - 1, len(train))]
                ax.plot(xs, ys, color="tab:blue", linewidth=1.6, label=f"train (mean of {k})")
        if val:
            ax.plot(*zip(*val), color="tab:orange", marker="o", markersize=3, linewidth=1.6, label="validation")
        ax.set_xlabel("tokens seen")
        ax.set_ylabel("loss (nats per token)")
        ax.grid(alpha=0.3)
        if title:
            ax.set_title(title, fontsize=10)
        if train or val:
            ax.legend()
        fig.tight_layout()
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return os.path.isfile(path)
