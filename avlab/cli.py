"""The command line: `python -m avlab` (or `avlab`, once installed with its console script).

    python -m avlab list                                          # datasets, recipes, methods, fusions
    python -m avlab preprocess cremad --raw ~/CREMA-D --out ~/avdata --workers 8 \\
        --split-file train=OGM-GE/data/CREMAD/train.csv --split-file test=OGM-GE/data/CREMAD/test.csv
    python -m avlab train --data cremad --root ~/avdata --method ogm_ge --method-arg alpha=0.8 \\
        --fusion concat --epochs 100 --optimizer sgd --scheduler step --out runs/cremad-ogmge
    python -m avlab train --data avdigits:dominant_audio --method mlb --epochs 12 --out runs/digits-mlb
    torchrun --nproc_per_node 4 -m avlab train --data vggsound ...       # DistributedDataParallel, same result

`train` writes `<out>/record.json` (the Trainer's run record), `<out>/checkpoint.pt` (one per epoch; a rerun
of the same command resumes from it) and `<out>/results.json`, and prints one results row. It trains on the GPU
with mixed precision when there is one (`--device`, `--no-amp`).

Methods are a plain dict, `METHODS`: name -> factory(ctx, **method_args) returning an `avlab.methods.base.Method`
(`ctx.load_teachers()` gives UMT its teachers; `ctx.args` holds the parsed command line). To add one:

    METHODS["fusion_tuning"] = lambda ctx, **kw: FusionTuning(**kw)

Models likewise (`MODELS`: name -> factory(data, args) returning the model), for methods that need their own.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DATASET_HELP = "avdigits[:preset] (AV-Digits, embedded) or a preprocessed real dataset: cremad, ave, kinetics_sounds, vggsound, ucf101"


# ----------------------------------------------------------------------------- registries

@dataclass
class RunContext:
    """What a method or model factory may need: the parsed arguments, the data splits, the model builder."""
    args: argparse.Namespace
    splits: dict
    build: object = None  # build(data) -> a fresh model of the run's architecture
    _teachers: dict | None = field(default=None, repr=False)

    def load_teachers(self) -> dict:
        """{modality: model} from `--teachers audio=PATH visual=PATH` (Trainer checkpoints or state dicts of a
        model of this architecture; only the teacher modality's encoder is read)."""
        if self._teachers is None:
            self._teachers = load_teachers(self.args.teachers or [], lambda: self.build(self.splits["train"]))
        return self._teachers


def _methods():
    from avlab.methods.base import Method
    from avlab.methods.mlb import MLB
    from avlab.methods.ogm import OGMGE
    from avlab.methods.umt import UMT

    def umt(ctx, **kw):
        teachers = ctx.load_teachers()
        if not teachers:
            raise SystemExit("avlab: UMT distils uni-modal teachers: train each one first, e.g.\n"
                             "  python -m avlab train --data D --modalities visual --out runs/teacher-visual\n"
                             "then pass --teachers visual=runs/teacher-visual/checkpoint.pt (and audio=...)")
        return UMT(teachers, **kw)

    return {
        "joint": lambda ctx, **kw: Method(**kw),
        "ogm": lambda ctx, **kw: OGMGE(noise=False, **kw),
        "ogm_ge": lambda ctx, **kw: OGMGE(**kw),
        "mlb": lambda ctx, **kw: MLB(**kw),
        "multiloss": lambda ctx, **kw: MLB(balance=False, **kw),
        "umt": umt,
    }


def _default_model(data, args):
    from avlab.experiment import build_model

    return build_model(data, args.fusion, args.width)


METHODS: dict = {}  # filled on first use (importing the methods imports torch): see `methods()`
MODELS: dict = {"av": _default_model}


def methods() -> dict:
    if not METHODS:
        METHODS.update(_methods())
    return METHODS


def load_teachers(specs, build) -> dict:
    """{modality: model} from ["audio=path", ...]; each model gets the encoder weights of that modality."""
    import torch

    from avlab.models.classifier import MODALITIES

    teachers = {}
    for spec in specs:
        modality, _, path = spec.partition("=")
        if modality not in MODALITIES or not path:
            raise SystemExit(f"avlab: --teachers takes MODALITY=PATH with MODALITY in {MODALITIES}, got {spec!r}")
        if not Path(path).is_file():
            raise SystemExit(f"avlab: teacher checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise SystemExit(f"avlab: teacher checkpoint {path} cannot be read ({err})") from err
        weights = state.get("model", state) if isinstance(state, dict) else None
        model = build()
        keys = [k for k in model.state_dict() if k.startswith(modality + ".")]
        missing = [k for k in keys if not isinstance(weights, dict) or k not in weights]
        if missing:
            raise SystemExit(f"avlab: {path} holds no {modality} encoder of this architecture (missing {missing[:3]}); "
                             "train the teacher with the same --data, --width and --model")
        try:
            model.load_state_dict({k: weights[k] for k in keys}, strict=False)
        except RuntimeError as err:
            raise SystemExit(f"avlab: the {modality} encoder in {path} does not fit this model ({err})") from err
        teachers[modality] = model
    return teachers


# ----------------------------------------------------------------------------- argument parsing

def _value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _pairs(items, flag: str) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"avlab: {flag} takes KEY=VALUE, got {item!r}")
        out[key.replace("-", "_")] = _value(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avlab", description="avlab: audio-visual learning when modalities do not cooperate")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a method on a dataset (resumes from <out>/checkpoint.pt)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", required=True, help=DATASET_HELP)
    t.add_argument("--root", default=None, help="folder of the preprocessed real datasets (default: $AVLAB_DATA)")
    t.add_argument("--data-arg", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. n_train=1500 (AV-Digits), num_frames=3 or image_size=112 (real data)")
    t.add_argument("--method", default="joint", help="one of `avlab list`'s methods")
    t.add_argument("--method-arg", action="append", metavar="KEY=VALUE", help="method option, e.g. alpha=0.8")
    t.add_argument("--teachers", nargs="+", metavar="MODALITY=CHECKPOINT", help="UMT's uni-modal teachers")
    t.add_argument("--model", default="av", help="model factory (MODELS)")
    t.add_argument("--fusion", default="concat", choices=["sum", "concat", "film", "gated"])
    t.add_argument("--width", type=int, default=None, help="ResNet-18 width (64 = the real one; default 8 on "
                                                            "AV-Digits, 64 on real data)")
    t.add_argument("--modalities", nargs="+", default=["audio", "visual"], choices=["audio", "visual"])
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=64, help="global batch (divided among torchrun's processes)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--scheduler", default=None, choices=["cosine", "step"])
    t.add_argument("--grad-clip", type=float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    t.add_argument("--workers", type=int, default=0, help="data-loader worker processes (per GPU)")
    t.add_argument("--out", default=None, help="run folder (default runs/<data>-<method>-<fusion>-seed<seed>)")
    t.add_argument("--restart", action="store_true", help="delete the run folder's checkpoint and start afresh")
    t.add_argument("--no-test", action="store_true", help="skip the final evaluation on the test split")
    t.add_argument("--no-sync-bn", action="store_true", help="under torchrun: per-GPU BatchNorm statistics")
    t.add_argument("--find-unused", action="store_true", help="under torchrun: DDP find_unused_parameters")
    t.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("preprocess", help="raw download -> the common layout (resumable, parallel)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("dataset", help="cremad, ave, kinetics_sounds, vggsound or ucf101")
    p.add_argument("--raw", required=True, help="the unpacked download")
    p.add_argument("--out", required=True, help="root of the preprocessed datasets (writes <out>/<dataset>/)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: the CPU count)")
    p.add_argument("--fps", type=float, default=1.0)
    p.add_argument("--sample-rate", type=int, default=None, help="stored audio rate (default 16 kHz; CREMA-D 22,050)")
    p.add_argument("--frame-size", type=int, default=None, help="resize frames' shorter side (default: keep)")
    p.add_argument("--split-file", action="append", metavar="SPLIT=PATH",
                   help="CREMA-D: the OGM-GE lists, e.g. train=.../train.csv test=.../test.csv")
    p.add_argument("--classes", default=None, help="Kinetics-Sounds: file with one class name per line, or 'all'")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="reader option, e.g. fold=2, val_fraction=0.1, test_fraction=0.1, seed=1")
    p.add_argument("--overwrite", action="store_true", help="extract every clip again")
    p.add_argument("--no-progress", action="store_true")

    sub.add_parser("list", help="datasets, spectrogram recipes, methods, models and fusions")
    return parser


# ----------------------------------------------------------------------------- commands

def load_data(spec: str, root, options: dict) -> tuple[str, dict]:
    """(name, splits) for `--data`."""
    name, _, preset = spec.partition(":")
    if name.lower() in ("avdigits", "av-digits", "av_digits"):
        from avlab.data import load_avdigits

        preset = preset or options.pop("preset", "dominant_audio")
        return f"avdigits:{preset}", load_avdigits(preset, **options)
    from avlab.data.realdata import load_real
    from avlab.utils import data_dir

    splits = load_real(name, root or data_dir(), **options)
    return name.lower(), splits


def cmd_train(args) -> dict:
    import torch

    from avlab import distributed
    from avlab.evaluation import evaluate
    from avlab.train import TrainConfig
    from avlab.utils import seed_everything

    me = distributed.init_from_env()
    try:
        registry = methods()
        if args.method not in registry:
            raise SystemExit(f"avlab: unknown method {args.method!r}; choose one of {sorted(registry)}")
        if args.model not in MODELS:
            raise SystemExit(f"avlab: unknown model {args.model!r}; choose one of {sorted(MODELS)}")
        with distributed.main_first():  # rank 0 builds any cache first
            name, splits = load_data(args.data, args.root, _pairs(args.data_arg, "--data-arg"))
        if args.width is None:
            args.width = 8 if name.startswith("avdigits") else 64
        train, val = splits["train"], splits.get("val")
        say = print if me.is_main else (lambda *a, **k: None)
        if val is None and "test" in splits:
            val = splits["test"]
            say(f"avlab: {name} has no val split: validating on test each epoch, as the OGM-GE code does")
        out = Path(args.out or f"runs/{name.replace(':', '-')}-{args.method}-{args.fusion}-seed{args.seed}")
        checkpoint = out / "checkpoint.pt"
        if args.restart and me.is_main:
            checkpoint.unlink(missing_ok=True)
        with distributed.main_first():
            pass  # nobody reads the checkpoint before rank 0 has deleted it

        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                             weight_decay=args.weight_decay, scheduler=args.scheduler, seed=args.seed,
                             modalities=tuple(args.modalities), device=args.device, amp=not args.no_amp,
                             grad_clip=args.grad_clip, num_workers=args.workers, progress=not args.no_progress)
        build_fn = MODELS[args.model]
        ctx = RunContext(args, splits, build=lambda data: build_fn(data, args))
        seed_everything(args.seed)  # the initial weights are part of what a seed fixes
        model = ctx.build(train)
        method = registry[args.method](ctx, **_pairs(args.method_arg, "--method-arg"))
        trainer = distributed.DistributedTrainer(model, config, method, checkpoint=checkpoint,
                                                 record=out / "record.json", sync_batchnorm=not args.no_sync_bn,
                                                 find_unused_parameters=True if args.find_unused else None)
        say(f"avlab: {name} (train {len(train)}, val {len(val) if val is not None else 0}), method {method.name}, "
            f"fusion {args.fusion}, width {args.width}, {me.world_size} process(es) on {trainer.device}"
            f"{', mixed precision' if trainer.use_amp else ''}; run folder {out}")
        run = trainer.fit(train, val)
        row = {"data": name, "method": method.name, "fusion": args.fusion, "modalities": "+".join(args.modalities),
               "seed": args.seed, "epochs": len(run.history)}
        last = run.history[-1] if run.history else {}
        for key in ("val_acc", "val_acc_audio", "val_acc_visual"):
            if key in last:
                row[key] = last[key]
        if "val_acc" in last:
            row["best_val_acc"] = run.best("val_acc")
        if me.is_main and not args.no_test and "test" in splits and splits["test"] is not val:
            test = evaluate(trainer.model, splits["test"], config.modalities, config.batch_size * 4)
            row.update({f"test_{k}": v for k, v in test.items() if k.startswith("acc")})
        row["seconds"] = run.record.get("seconds")
        if me.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(row, indent=1) + "\n")
            print_row(row)
        return row
    finally:
        distributed.shutdown()


def print_row(row: dict) -> None:
    cells = {k: (f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in row.items()}
    widths = {k: max(len(k), len(v)) for k, v in cells.items()}
    print("| " + " | ".join(k.ljust(widths[k]) for k in cells) + " |")
    print("| " + " | ".join(cells[k].ljust(widths[k]) for k in cells) + " |")


def cmd_preprocess(args) -> None:
    import os

    from avlab.data.preprocess import preprocess

    options = _pairs(args.option, "--option")
    if args.split_file:
        options["split_files"] = {k: str(v) for k, v in _pairs(args.split_file, "--split-file").items()}
    if args.classes:
        options["classes"] = args.classes
    report = preprocess(args.dataset, args.raw, args.out, workers=os.cpu_count() if args.workers is None else args.workers,
                        fps=args.fps, sample_rate=args.sample_rate, frame_size=args.frame_size,
                        overwrite=args.overwrite, progress=not args.no_progress, **options)
    print(report)
    return report


def cmd_list(args) -> None:
    from avlab.data.avdigits import PRESETS
    from avlab.data.realdata import REAL_DATASETS
    from avlab.data.recipes import RECIPES
    from avlab.models.fusion import FUSIONS

    print("datasets:  avdigits:" + " avdigits:".join(PRESETS) + "  " + " ".join(REAL_DATASETS))
    for key, cls in REAL_DATASETS.items():
        r = RECIPES[cls.recipe_name]
        print(f"  {key:<16} audio (1, {r.shape[0]}, {r.shape[1]}) [{r.source}], {cls.default_frames} frame(s)")
    print("methods:   " + " ".join(methods()))
    print("models:    " + " ".join(MODELS))
    print("fusions:   " + " ".join(FUSIONS))


def run(argv=None):
    """Parse and run one command; returns its result (train: the results row; preprocess: the report)."""
    args = build_parser().parse_args(argv)
    return {"train": cmd_train, "preprocess": cmd_preprocess, "list": cmd_list}[args.command](args)


def main(argv=None) -> None:
    """The console script (`[project.scripts] avlab = "avlab.cli:main"`)."""
    run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
