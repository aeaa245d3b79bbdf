"""The benchmark that regenerates itself: every method x fusion module x optimiser x preset x seed on AV-Digits.

    python -m avlab bench                                   # the default grid -> results/ (1,040 rows)
    python -m avlab bench --methods joint,mlb --fusions concat --optimizers adam --seeds 0 --out /tmp/grid

One row per run in `<out>/grid.csv`: the grid's coordinates (method, fusion, optimizer, preset, seed), its status
(`ok`, `unsupported` with the method's own reason, e.g. MMCosine on FiLM, or `failed` with the error), the fused
test accuracy of the weights of the best validation epoch (`select="val_acc"`: the epoch is chosen on the
validation split, never on test), linear probes on the visual and audio encoders, seconds, the versions and every
setting. A row is appended the moment its run finishes, and a rerun skips the rows already there: an interrupted
grid resumes where it stopped (the settings must be the same; another `--out` starts another grid). Then
`<out>/summary.md` (gain over joint training, paired by seed) and the figures `<out>/*.png` are rewritten from the
whole CSV.

Every method runs under each optimiser of the grid with the same small budget; `DESIGNED_FOR` says which
optimiser its authors used. A gain is a method's number minus joint training's with the same fusion, optimiser,
preset and seed (the same initial weights and batches): mean ± standard error over those pairs.

UMT distils uni-modal teachers and UME is their ensemble: for each (preset, optimiser, seed) two uni-modal models
(one per modality, same budget) are trained first, in the same worker pool. UME involves no fusion module; its
row is repeated for each fusion so that it pairs with each fusion's joint run.
"""
from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import statistics
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from avlab.methods import AGM, MLB, MMPareto, OGMGE, PMR, UMT, GBlending, MMCosine, Relearn

# --------------------------------------------------------------------------- the grid's defaults

METHODS = ("joint", "ogm_ge", "mlb", "multiloss", "umt", "ume", "gblending", "agm", "pmr", "mmpareto", "mmcosine",
           "relearn", "umt+mlb")
FUSIONS = ("sum", "concat", "film", "gated")
OPTIMIZERS = {"sgd": dict(optimizer="sgd", lr=0.03), "adam": dict(optimizer="adam", lr=3e-3)}  # SGD: momentum 0.9
PRESETS = ("dominant_audio", "dominant_visual")
SEEDS = (0, 1, 2, 3, 4)
# The per-run budgets, by name (`--budget`). "quick": ~1,000 runs took about 3 s of wall time each on 2 CPU cores
# shared with other jobs: about 40 minutes for the default grid, but too small for the models to finish learning
# (joint reaches 0.16-0.36; see results/summary.md). "chapter01": chapter 01's data and budget, where the dominance
# of audio is clear; a median 21 s a run on one busy core, so chapter 07 runs its slice (concat, dominant_audio) into
# results/field/; the whole grid at this budget is hours on a CPU, minutes on a GPU.
BUDGETS = {
    "quick": dict(data=dict(n_train=400, n_val=100, n_test=300, frames=2),
                  train=dict(epochs=3, batch_size=32, width=8)),
    "chapter01": dict(data=dict(n_train=1500, n_val=200, n_test=500, frames=2, vis_noise=0.2, snr_db=5.0),
                      train=dict(epochs=6, batch_size=64, width=8)),
}
DATA, TRAIN = BUDGETS["quick"]["data"], BUDGETS["quick"]["train"]

# The optimiser each method's authors trained with: each class's `designed_for` (its docstring gives the source).
DESIGNED_FOR = {"joint": "-",  # the baseline: trained under every optimiser, each method is paired with its own
                "ogm_ge": OGMGE.designed_for, "mlb": MLB.designed_for, "multiloss": MLB.designed_for,
                "umt": UMT.designed_for, "ume": UMT.designed_for, "gblending": GBlending.designed_for,
                "agm": AGM.designed_for, "pmr": PMR.designed_for, "mmpareto": MMPareto.designed_for,
                "mmcosine": MMCosine.designed_for, "relearn": Relearn.designed_for,
                "umt+mlb": UMT.designed_for}  # both parts were designed for Adam
# each method's settings in this grid (its authors' defaults, with epoch counts scaled to the budget)
METHOD_ARGS = {
    "joint": {}, "ogm_ge": dict(alpha=0.8), "mlb": dict(alpha=0.8), "multiloss": dict(alpha=0.8, balance=False),
    "umt": dict(weight=10.0), "ume": {}, "gblending": dict(estimate_epochs=1), "agm": dict(alpha=1.5),
    "pmr": dict(alpha=2.0, end=None), "mmpareto": dict(gamma=1.5), "mmcosine": dict(scale=10.0),
    "relearn": dict(strength=3.0, every=1, max_resets=3), "umt+mlb": dict(weight=10.0, alpha=0.8),
}
TEACHER_METHODS = {"umt", "ume", "umt+mlb"}

KEYS = ("method", "fusion", "optimizer", "preset", "seed")
COLUMNS = (*KEYS, "status", "reason", "test_acc", "probe_visual", "probe_audio", "best_val_acc", "selected_epoch",
           "seconds", "designed_for", "epochs", "batch_size", "width", "lr", "n_train", "n_val", "n_test", "frames",
           "vis_noise", "snr_db", "method_args", "avlab", "torch")
SETTINGS = ("epochs", "batch_size", "width", "lr", "n_train", "n_val", "n_test", "frames", "vis_noise", "snr_db",
            "method_args")


class BenchError(ValueError):
    """A bad option (unknown method, fusion, ...) or a CSV written with other settings."""


def make_method(name: str, teachers: dict | None = None, **overrides):
    """The plug-in for one grid name, with `METHOD_ARGS` (updated by `overrides`, e.g. alpha=0.5); UMT and
    UMT+MLB need the uni-modal teachers ({modality: model})."""
    from avlab import methods as M

    a = {**METHOD_ARGS[name], **overrides}
    return {"joint": lambda: M.Method(), "ogm_ge": lambda: M.OGMGE(**a), "mlb": lambda: M.MLB(**a),
            "multiloss": lambda: M.MLB(**a), "umt": lambda: M.UMT(teachers, **a), "gblending": lambda: M.GBlending(**a),
            "agm": lambda: M.AGM(**a), "pmr": lambda: M.PMR(**a), "mmpareto": lambda: M.MMPareto(**a),
            "mmcosine": lambda: M.MMCosine(**a), "relearn": lambda: M.Relearn(**a),
            "umt+mlb": lambda: M.Compose(M.UMT(teachers, weight=a["weight"]), M.MLB(alpha=a["alpha"]))}[name]()


# --------------------------------------------------------------------------- one run (in a worker)

_SPLITS: dict = {}


def _setup_worker(data: dict, threads: int = 1) -> None:
    import torch

    torch.set_num_threads(threads)
    _SPLITS.clear()
    _SPLITS.update(data)


def _splits(preset: str, data: dict) -> dict:
    if preset not in _SPLITS:
        from avlab.data import load_avdigits

        _SPLITS[preset] = load_avdigits(preset, **data)
    return _SPLITS[preset]


def _teacher_job(job: dict) -> dict:
    """Train one uni-modal model; returns its weights (for UMT), test accuracy, probe and seconds."""
    from avlab.diagnostics import linear_probe
    from avlab.evaluation import evaluate
    from avlab.experiment import train_model

    splits = _splits(job["preset"], job["data"])
    m = job["modality"]
    start = time.perf_counter()
    model, _ = train_model(splits, modalities=(m,), seed=job["seed"], progress=False, select="val_acc",
                           **job["train"])
    seconds = time.perf_counter() - start
    return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "seconds": seconds,
            "test_acc": evaluate(model, splits["test"], (m,))["acc"],
            "probe": linear_probe(model, splits["train"], splits["test"], m)}


def _teacher_models(job: dict, splits: dict) -> dict:
    from avlab.experiment import build_model

    models = {}
    for m, state in job["teachers"].items():
        model = build_model(splits["train"], "concat", job["train"]["width"])
        model.load_state_dict(state)
        models[m] = model.eval()
    return models


def _run_job(job: dict) -> dict:
    """Train one (method, fusion, optimiser, preset, seed); returns its CSV row."""
    from avlab.diagnostics import linear_probe
    from avlab.evaluation import evaluate
    from avlab.experiment import build_model
    from avlab.train import Trainer, TrainConfig
    from avlab.utils import seed_everything

    splits = _splits(job["preset"], job["data"])
    row = dict(job["row"])
    train = dict(job["train"])
    width = train.pop("width")
    try:
        config = TrainConfig(seed=job["seed"], progress=False, select="val_acc", **train)
        seed_everything(job["seed"])  # the initial weights are part of what a seed fixes
        model = build_model(splits["train"], job["fusion"], width)
        method = make_method(job["method"], _teacher_models(job, splits) if job.get("teachers") else None)
        try:
            trainer = Trainer(model, config, method)
        except ValueError as err:  # the method's setup refuses this model (e.g. MMCosine on FiLM)
            return {**row, "status": "unsupported", "reason": " ".join(str(err).split())}
        start = time.perf_counter()
        run = trainer.fit(splits["train"], splits["val"])
        seconds = time.perf_counter() - start + job.get("extra_seconds", 0.0)
        model = trainer.model
        return {**row, "status": "ok", "test_acc": round(evaluate(model, splits["test"])["acc"], 4),
                "probe_visual": round(linear_probe(model, splits["train"], splits["test"], "visual"), 4),
                "probe_audio": round(linear_probe(model, splits["train"], splits["test"], "audio"), 4),
                "best_val_acc": round(run.selected["val_acc"], 4), "selected_epoch": run.record["selected_epoch"],
                "seconds": round(seconds, 2)}
    except Exception as err:  # recorded, not dropped: a diverging run is a result too
        last = traceback.format_exception_only(type(err), err)[-1]
        return {**row, "status": "failed", "reason": " ".join(last.split())}


# --------------------------------------------------------------------------- the grid

def check_options(methods, fusions, optimizers, presets, seeds) -> None:
    from avlab.data.avdigits import PRESETS as ALL_PRESETS

    for what, given, known in (("method", methods, METHODS), ("fusion", fusions, FUSIONS),
                               ("optimizer", optimizers, tuple(OPTIMIZERS)), ("preset", presets, tuple(ALL_PRESETS))):
        if not given:
            raise BenchError(f"--{what}s is empty; choose from {', '.join(known)}")
        bad = [g for g in given if g not in known]
        if bad:
            raise BenchError(f"unknown {what} {bad[0]!r}; choose from {', '.join(known)} (comma-separated)")
    if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise BenchError(f"--seeds takes non-negative integers such as 0,1,2, got {seeds}")


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in COLUMNS} for r in rows)


def _settings(row: dict) -> dict:
    return {k: str(row.get(k, "")) for k in SETTINGS}  # a CSV from before a column existed holds "" (the default)


def run_grid(methods=METHODS, fusions=FUSIONS, optimizers=tuple(OPTIMIZERS), presets=PRESETS, seeds=SEEDS,
             workers: int | None = None, out="results", data: dict | None = None, train: dict | None = None,
             budget: str = "quick", log=print) -> dict:
    """Run every missing row of the grid into `<out>/grid.csv`, then rewrite the summary and figures.

    `budget` names the per-run budget (`BUDGETS`); `data`/`train` override its entries. Returns {"ran", "skipped",
    "seconds", "rows"}."""
    import avlab
    import torch

    from avlab.utils import get_device

    methods, fusions, optimizers, presets = (list(x) for x in (methods, fusions, optimizers, presets))
    seeds = list(seeds)
    check_options(methods, fusions, optimizers, presets, seeds)
    if budget not in BUDGETS:
        raise BenchError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    data, train = {**BUDGETS[budget]["data"], **(data or {})}, {**BUDGETS[budget]["train"], **(train or {})}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grid.csv"
    done_rows = read_rows(path)
    done = {tuple(r[k] for k in KEYS) for r in done_rows}

    def base_row(method, fusion, opt, preset, seed):
        t = {**train, **OPTIMIZERS[opt]}
        return {"method": method, "fusion": fusion, "optimizer": opt, "preset": preset, "seed": seed, "status": "",
                "reason": "", "designed_for": DESIGNED_FOR[method], "epochs": t["epochs"],
                "batch_size": t["batch_size"], "width": t["width"], "lr": t["lr"],
                **{k: data.get(k, "") for k in ("n_train", "n_val", "n_test", "frames", "vis_noise", "snr_db")},
                "method_args": json.dumps(METHOD_ARGS[method], sort_keys=True),
                "avlab": avlab.__version__, "torch": torch.__version__}

    for r in done_rows:  # resuming: the CSV must hold this grid's budget, or the rows would not compare
        now = _settings(base_row(r["method"], r["fusion"], r["optimizer"], r["preset"], int(r["seed"])))
        if _settings(r) != now:
            differ = {k: (r.get(k, ""), now[k]) for k in SETTINGS if str(r.get(k, "")) != now[k]}
            raise BenchError(f"{path} holds runs with other settings {differ} (in the CSV, now); pass another --out "
                             "or delete it to start afresh")

    # seed-major order: an interrupted grid holds whole seeds of every preset, optimiser, method and fusion
    todo = [(m, f, o, p, s) for s in seeds for p in presets for o in optimizers for m in methods for f in fusions
            if (m, f, o, p, str(s)) not in done]
    log(f"avlab bench: {len(done)} row(s) already in {path}, {len(todo)} to run")
    start = time.perf_counter()
    on_cpu = get_device("auto").type == "cpu"
    if workers is None:
        workers = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) \
            if on_cpu else 0
    loaded = {p: _splits(p, data) for p in presets}  # builds each cache once, here, before the workers read it

    def job_for(m, f, o, p, s, teachers=None, extra=0.0):
        return {"method": m, "fusion": f, "preset": p, "seed": s, "data": data,
                "train": {**train, **OPTIMIZERS[o]}, "row": base_row(m, f, o, p, s), "teachers": teachers,
                "extra_seconds": extra}

    # One ordered queue of tasks: the uni-modal teachers of a (seed, preset, optimiser) go just before the first
    # run that needs them (UMT, UME, UMT+MLB), and such a run waits until both of its teachers are done.
    queue, teachers_of = [], {}
    for t in todo:
        m, f, o, p, s = t
        if m in TEACHER_METHODS and (p, o, s) not in teachers_of:
            teachers_of[p, o, s] = [(p, o, s, mod) for mod in ("audio", "visual")]
            queue += [("teacher", key) for key in teachers_of[p, o, s]]
        queue.append(("run", t))
    teachers: dict = {}
    ran = 0

    def task_ready(task):
        kind, key = task
        if kind == "teacher" or key[0] not in TEACHER_METHODS:
            return True
        return all(k in teachers for k in teachers_of[key[3], key[2], key[4]])

    def start_task(task):
        """(function, argument) of a task; a UME row needs no worker (returns None, recorded here)."""
        kind, key = task
        if kind == "teacher":
            p, o, s, mod = key
            return _teacher_job, {"preset": p, "seed": s, "modality": mod, "data": data,
                                  "train": {**train, **OPTIMIZERS[o]}}
        m, f, o, p, s = key
        if m not in TEACHER_METHODS:
            return _run_job, job_for(*key)
        pair = {mod: teachers[p, o, s, mod] for mod in ("audio", "visual")}
        if m == "ume":
            record(_ume_row(base_row(*key), pair, p, data))
            return None
        return _run_job, job_for(*key, teachers={mod: pair[mod]["state"] for mod in pair},
                                 extra=sum(t["seconds"] for t in pair.values()))

    if done_rows and list(done_rows[0]) != list(COLUMNS):  # a CSV from an older avlab: rewrite it with today's header
        _write_rows(path, done_rows)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if not done_rows:
            writer.writeheader()

        def record(row):
            nonlocal ran
            writer.writerow({k: row.get(k, "") for k in COLUMNS})
            f.flush()
            ran += 1
            acc = f"{row['test_acc']:.3f}" if row.get("status") == "ok" else row["status"]
            log(f"[{ran}/{len(todo)}] {row['preset']} {row['optimizer']} seed {row['seed']} {row['method']} "
                f"{row['fusion']}: {acc} ({time.perf_counter() - start:.0f} s)")

        def finish(task, result):
            if task[0] == "teacher":
                teachers[task[1]] = result
            else:
                record(result)

        if workers <= 1:
            for task in queue:  # in order, every task's teachers come before it
                started = start_task(task)
                if started is not None:
                    finish(task, started[0](started[1]))
        else:
            context = multiprocessing.get_context("spawn")  # never fork a process with threads (notebooks)
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_setup_worker,
                                     initargs=(loaded,)) as pool:
                pending: dict = {}
                try:
                    while queue or pending:
                        # keep the pool just full (workers + 1 tasks), taking the first task that can start
                        while len(pending) <= workers:
                            task = next((t for t in queue if task_ready(t)), None)
                            if task is None:
                                break
                            queue.remove(task)
                            started = start_task(task)
                            if started is not None:
                                pending[pool.submit(*started)] = task
                        if not pending:
                            if queue:
                                raise RuntimeError(f"avlab bench: {len(queue)} task(s) wait for teachers never queued")
                            break
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            finish(pending.pop(future), future.result())
                finally:
                    pool.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - start
    _log_session(out, len(todo), seconds, workers)
    rows = read_rows(path)
    write_summary(rows, out)
    write_figures(rows, out)
    return {"ran": ran, "skipped": len(done), "seconds": seconds, "rows": len(rows)}


def _ume_row(row: dict, pair: dict, preset: str, data: dict) -> dict:
    """UME: the average of the two uni-modal models' log-probabilities; its probes are theirs."""
    from avlab.methods.umt import ensemble_accuracy

    splits = _splits(preset, data)
    models = _teacher_models({"teachers": {m: t["state"] for m, t in pair.items()}, "train": {"width": row["width"]}},
                             splits)
    return {**row, "status": "ok", "reason": "fusion-free: the same uni-modal ensemble for every fusion",
            "test_acc": round(ensemble_accuracy(models, splits["test"]), 4),
            "probe_visual": round(pair["visual"]["probe"], 4), "probe_audio": round(pair["audio"]["probe"], 4), "seconds": round(sum(t["seconds"] for t in pair.values()), 2)}


def _log_session(out: Path, rows: int, seconds: float, workers: int) -> None:
    path = out / "sessions.json"
    sessions = json.loads(path.read_text()) if path.exists() else []
    sessions.append({"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "rows_run": rows, "seconds": round(seconds, 1),
                     "workers": workers, "cpus": os.cpu_count()})
    path.write_text(json.dumps(sessions, indent=1) + "\n")


# --------------------------------------------------------------------------- summary and figures

def paired_gains(rows: list[dict], metric: str, baseline: str = "joint", by=("preset", "optimizer")) -> list[dict]:
    """Per `by` group and method: mean and standard error of (method - baseline) over the (fusion, seed) pairs
    where both ran; `n` pairs."""
    value = {tuple(r[k] for k in KEYS): float(r[metric]) for r in rows
             if r["status"] == "ok" and r.get(metric) not in (None, "")}
    groups: dict = {}
    for (m, f, o, p, s), v in value.items():
        if m == baseline:
            continue
        b = value.get((baseline, f, o, p, s))
        if b is not None:
            r = {"method": m, "fusion": f, "optimizer": o, "preset": p, "seed": s}
            groups.setdefault((*(r[k] for k in by), m), []).append(v - b)
    out = []
    for key, diffs in groups.items():
        mean = statistics.fmean(diffs)
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        out.append({**dict(zip((*by, "method"), key)), "gain": mean, "se": se, "n": len(diffs)})
    return out


def _cell(g: dict | None) -> str:
    return "" if g is None else f"{g['gain']:+.3f} ± {g['se']:.3f}"


def write_summary(rows: list[dict], out: Path) -> Path:
    """`<out>/summary.md` (`summary_markdown`)."""
    path = out / "summary.md"
    path.write_text(summary_markdown(rows, out))
    return path


def summary_markdown(rows: list[dict], out: Path | None = None) -> str:
    """The summary as markdown: per preset, each method's gain over joint (fused test accuracy, visual and audio probe)
    under each optimiser, mean ± s.e. over the (fusion, seed) pairs; then per fusion; then what did not run."""
    ok = [r for r in rows if r["status"] == "ok"]
    presets = sorted({r["preset"] for r in rows})
    optimizers = [o for o in OPTIMIZERS if any(r["optimizer"] == o for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows) and m != "joint"]
    gains = {metric: {(g["preset"], g["optimizer"], g["method"]): g for g in paired_gains(rows, metric)}
             for metric in ("test_acc", "probe_visual", "probe_audio")}
    by_fusion = {(g["preset"], g["optimizer"], g["fusion"], g["method"]): g
                 for g in paired_gains(rows, "test_acc", by=("preset", "optimizer", "fusion"))}
    sessions = json.loads((out / "sessions.json").read_text()) if out and (out / "sessions.json").exists() else []
    first = rows[0] if rows else {}
    lines = ["# The avlab grid", "",
             "Regenerate with `python -m avlab bench` (resumes: delete grid.csv to start afresh). Each run: AV-Digits "
             f"preset, {first.get('n_train')} training / {first.get('n_val')} validation / {first.get('n_test')} test "
             f"samples, {first.get('frames')} frames, ResNet-18 width {first.get('width')}, {first.get('epochs')} "
             f"epochs, batch {first.get('batch_size')}; SGD (momentum 0.9) lr {OPTIMIZERS['sgd']['lr']}, Adam lr "
             f"{OPTIMIZERS['adam']['lr']}; test accuracy of the best-validation epoch's weights. avlab "
             f"{first.get('avlab')}, torch {first.get('torch')}.", "",
             f"{len(rows)} rows: {len(ok)} ok, {sum(r['status'] == 'unsupported' for r in rows)} unsupported, "
             f"{sum(r['status'] == 'failed' for r in rows)} failed. Wall time: "
             + (", ".join(f"{s['seconds'] / 60:.1f} min for {s['rows_run']} rows ({s['workers']} workers, "
                          f"{s['finished']})" for s in sessions) or "not recorded") + ".", "",
             "Gain = method − joint training with the same fusion, optimiser, preset and seed (same initial weights),"
             " mean ± standard error over the (fusion, seed) pairs; *designed* marks the optimiser the method's "
             "authors used.", ""]
    for p in presets:
        lines += [f"## {p}", "", "| method | designed for | " + " | ".join(
            f"{o}: fused | {o}: visual probe | {o}: audio probe" for o in optimizers) + " | pairs |",
                  "| --- | --- |" + " --- |" * (3 * len(optimizers) + 1)]
        for m in methods:
            cells = [_cell(gains[metric].get((p, o, m))) for o in optimizers
                     for metric in ("test_acc", "probe_visual", "probe_audio")]
            n = max((gains["test_acc"].get((p, o, m)) or {"n": 0})["n"] for o in optimizers)
            lines.append(f"| {m} | {DESIGNED_FOR.get(m, '')} | " + " | ".join(cells) + f" | {n} |")
        joint = {(r["optimizer"], r["fusion"]): [] for r in ok if r["preset"] == p and r["method"] == "joint"}
        for r in ok:
            if r["preset"] == p and r["method"] == "joint":
                joint[r["optimizer"], r["fusion"]].append(float(r["test_acc"]))
        fusions = [f for f in FUSIONS if any(k[1] == f for k in joint)]
        lines += ["", f"Fused test-accuracy gain per fusion module ({p}); joint's own accuracy in the first row.", "",
                  "| method | " + " | ".join(f"{o} {f}" for o in optimizers for f in fusions) + " |",
                  "| --- |" + " --- |" * (len(optimizers) * len(fusions))]
        lines.append("| joint (accuracy) | " + " | ".join(
            f"{statistics.fmean(joint[o, f]):.3f}" if joint.get((o, f)) else "" for o in optimizers for f in fusions)
                     + " |")
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(_cell(by_fusion.get((p, o, f, m))) or "—"
                                                  for o in optimizers for f in fusions) + " |")
        lines.append("")
    skipped = sorted({(r["method"], r["fusion"], r["status"], r["reason"]) for r in rows
                      if r["status"] in ("unsupported", "failed")})
    if skipped:
        lines += ["## Not run", "", "| method | fusion | status | reason |", "| --- | --- | --- | --- |"]
        lines += [f"| {m} | {f} | {s} | {why} |" for m, f, s, why in skipped]
        lines.append("")
    return "\n".join(lines)


def plot_gains(gains, ax, order=None, title: str = "", hue: str = "optimizer"):
    """Horizontal seaborn bars of `gains` (a DataFrame with method, `hue`, gain, se), one per method and hue
    level, with ± s.e. whiskers; a grey line at zero."""
    import seaborn as sns

    order = order or [m for m in METHODS if m in set(gains.method)] or sorted(set(gains.method))
    levels = [o for o in OPTIMIZERS if o in set(gains[hue])] if hue == "optimizer" else sorted(set(gains[hue]))
    sns.barplot(gains, y="method", x="gain", hue=hue, order=order, hue_order=levels, errorbar=None, ax=ax, orient="h")
    for level, bars in zip(levels, ax.containers):  # one container per hue level; a bar per method it has
        se = gains[gains[hue] == level].set_index("method")["se"]
        for bar in bars:
            centre = bar.get_y() + bar.get_height() / 2
            method = order[round(centre)]  # categories sit at 0, 1, ...; hue levels are dodged around them
            if method in se.index and se[method] == se[method]:  # not NaN
                ax.errorbar(bar.get_width(), centre, xerr=se[method], fmt="none", ecolor="black", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(title=title, xlabel="gain over joint (mean ± s.e. over pairs)", ylabel="")
    return ax


def write_figures(rows: list[dict], out: Path) -> list[Path]:
    """`<out>/gain_test_acc.png` and `<out>/gain_probe_visual.png`: gain over joint per method, one panel per
    preset, one bar per optimiser (mean ± s.e. over the (fusion, seed) pairs)."""
    import matplotlib.pyplot as plt  # headless, matplotlib falls back to Agg by itself
    import pandas as pd

    paths = []
    for metric, title in (("test_acc", "fused test accuracy"), ("probe_visual", "visual linear probe")):
        gains = pd.DataFrame(paired_gains(rows, metric))
        if gains.empty:
            continue
        presets = sorted(gains.preset.unique())
        order = [m for m in METHODS if m in set(gains.method)]
        fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.5), squeeze=False, sharey=True)
        for ax, preset in zip(axes[0], presets):
            plot_gains(gains[gains.preset == preset], ax, order, f"{preset}: gain over joint, {title}")
        fig.tight_layout()
        path = out / f"gain_{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
