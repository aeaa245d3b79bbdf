"""Seaborn plots of training histories and per-modality numbers. Functions take plain data (histories,
lists of dicts) and return the matplotlib axes, so a widget callback can redraw them."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def history_frame(runs: dict) -> pd.DataFrame:
    """Long table (run, epoch, metric, value) from {name: Run, history list, or list of those (seeds)}."""
    rows = []
    for name, runs_of_name in runs.items():
        for seed, run in enumerate(runs_of_name if isinstance(runs_of_name, (list, tuple)) and runs_of_name
                                   and not isinstance(runs_of_name[0], dict) else [runs_of_name]):
            history = getattr(run, "history", run)
            for record in history:
                rows += [{"run": name, "seed": seed, "epoch": record["epoch"], "metric": k, "value": v}
                         for k, v in record.items() if k != "epoch"]
    return pd.DataFrame(rows)


def plot_history(runs: dict, metrics=("val_acc", "val_acc_audio", "val_acc_visual"), ax=None, title: str | None = None):
    """One line per (run, metric), the band showing the spread over seeds where a run has several."""
    frame = history_frame(runs)
    frame = frame[frame.metric.isin(metrics)]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    sns.lineplot(frame, x="epoch", y="value", hue="metric", style="run", errorbar="sd", ax=ax)
    ax.set(ylabel="", title=title)
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return ax


def plot_bars(rows: list[dict] | pd.DataFrame, x: str, y: str, hue: str | None = None, ax=None, title: str | None = None):
    """Mean with the standard deviation over the rows (e.g. seeds) of each bar."""
    frame = pd.DataFrame(rows)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    sns.barplot(frame, x=x, y=y, hue=hue, errorbar="sd", ax=ax)
    ax.set(title=title)
    return ax


def summary_table(rows: list[dict], by: str | list[str], values: list[str]) -> pd.DataFrame:
    """Mean ± std over seeds, one line per group: the tables that close each chapter."""
    frame = pd.DataFrame(rows).groupby(by)[values].agg(["mean", "std"])
    return frame.round(3)
