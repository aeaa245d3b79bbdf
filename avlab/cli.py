"""The command line: `python -m avlab` (or `avlab`, once installed with its console script).

    python -m avlab list                                          # datasets, recipes, methods, fusions
    python -m avlab preprocess cremad --raw ~/CREMA-D --out ~/avdata --workers 8 \\
        --split-file train=OGM-GE/data/CREMAD/train.csv --split-file test=OGM-GE/data/CREMAD/test.csv
    python -m avlab train --data cremad --root ~/avdata --method ogm_ge --method-arg alpha=0.8 \\
        --fusion concat --epochs 100 --optimizer sgd --scheduler step --out runs/cremad-ogmge
    python -m avlab train --data avdigits:dominant_audio --method mlb --epochs 12 --out runs/digits-mlb
    torchrun --nproc_per_node 4 -m avlab train --data vggsound ...       # DistributedDataParallel, same result
    python -m avlab bench --out results      # every method x fusion x optimiser x preset x seed (avlab.bench)

`train` writes `<out>/record.json` (the Trainer's run record), `<out>/checkpoint.pt` (one per epoch; a rerun
of the same command resumes from it) and `<out>/results.json`, and prints one results row. It trains on the GPU
with mixed precision when there is one (`--device`, `--no-amp`).

    python -m avlab train --data avdigits --method umt+mlb --teachers visual=runs/t/checkpoint.pt  # Compose
    python -m avlab train --data avdigits --modalities audio --init abri --width 8       # chapter 04
    python -m avlab train --data avdigits --model zorro --method zorro_contrastive        # chapter 06

Methods: `methods()` is `avlab.methods.registry.registry(...)`: every `Method` subclass exported by
`avlab.methods` with a class-level `name`, plus explicit entries for names that need context (UMT's
`--teachers`, Fusion Tuning's `--stage1` run folders) or fix an argument (`ogm`, `multiloss`). `--method a+b`
composes them (`avlab.methods.Compose`); `--method-arg KEY=VALUE` (in a composition `PART.KEY=VALUE`) is checked
against the constructor's signature before any data is loaded. A plain factory(ctx, **options) may be added by
hand too (`METHODS["mine"] = lambda ctx, **kw: Mine(**kw)`; its options are then not checked).
Models likewise (`MODELS`: name -> factory(data, args) returning the model).

Every user error is a `UsageError`: `main` prints it as one line `avlab: <what is wrong and how to fix it>` and
exits with code 2 (no traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DATASET_HELP = "avdigits[:preset] (AV-Digits, embedded) or a preprocessed real dataset: cremad, ave, kinetics_sounds, vggsound, ucf101"


# ----------------------------------------------------------------------------- registries

class UsageError(SystemExit):
    """A user error: `main` prints it as one line `avlab: <what is wrong and how to fix it>` and exits with 2."""
    code_on_exit = 2

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line
        super().__init__(message if message.startswith("avlab:") else f"avlab: {message}")


@dataclass
class RunContext:
    """What a method or model factory may need: the parsed arguments, the data splits, the model builder and
    the model being trained (built before the method)."""
    args: argparse.Namespace
    splits: dict
    build: object = None  # build(data) -> a fresh model of the run's architecture
    model: object = None
    _teachers: dict | None = field(default=None, repr=False)

    def load_teachers(self) -> dict:
        """{modality: model} from `--teachers audio=PATH visual=PATH` (Trainer checkpoints or state dicts of a
        model of this architecture; only the teacher modality's encoder is read)."""
        if self._teachers is None:
            self._teachers = load_teachers(self.args.teachers or [], lambda: self.build(self.splits["train"]))
        return self._teachers


TEACHERS_HINT = ("UMT distils uni-modal teachers: train each one first (python -m avlab train --data D "
                 "--modalities visual --out runs/teacher-visual), then pass --teachers "
                 "visual=runs/teacher-visual/checkpoint.pt (and audio=...)")
STAGE1_HINT = ("Fusion Tuning's stage 2 reads stage 1: train each encoder alone with --method confidence_recorder "
               "(--modalities audio --out runs/s1-audio; --modalities visual --out runs/s1-visual), then pass "
               "--stage1 audio=runs/s1-audio visual=runs/s1-visual")


def _explicit_methods() -> dict:
    """Names that need more than `cls(**options)`: fixed arguments, or context from the command line."""
    from avlab.methods.base import Method
    from avlab.methods.fusion_tuning import ConfidenceRecorder, FusionTuning
    from avlab.methods.mlb import MLB
    from avlab.methods.ogm import OGMGE
    from avlab.methods.registry import MethodEntry
    from avlab.methods.umt import UMT
    from avlab.methods.zorro_contrastive import ZorroContrastive

    def umt(ctx, **kw):
        teachers = ctx.load_teachers()
        if not teachers:
            raise UsageError(TEACHERS_HINT)
        return UMT(teachers, **kw)

    return {
        "joint": MethodEntry("joint", Method),
        "ogm": MethodEntry("ogm", OGMGE, fixed={"noise": False}),
        "ogm_ge": MethodEntry("ogm_ge", OGMGE),
        "mlb": MethodEntry("mlb", MLB, fixed={"balance": True}),
        "multiloss": MethodEntry("multiloss", MLB, fixed={"balance": False}, owns=MLB.MULTILOSS_OWNS),
        "umt": MethodEntry("umt", UMT, make=umt, provided=("teachers",), needs="--teachers MODALITY=CHECKPOINT",
                           check=lambda args: None if args.teachers else TEACHERS_HINT),
        "confidence_recorder": MethodEntry("confidence_recorder", ConfidenceRecorder,
                                           needs="Fusion Tuning stage 1: writes <out>/confidences.pt"),
        "fusion_tuning": MethodEntry("fusion_tuning", FusionTuning, make=fusion_tuning_stage2,
                                     provided=("conf_audio", "conf_visual"),
                                     needs="stage 2: --stage1 audio=RUN visual=RUN",
                                     check=lambda args: None if set(_pairs_text(args.stage1, "--stage1"))
                                     == {"audio", "visual"} else STAGE1_HINT),
        "zorro_contrastive": MethodEntry("zorro_contrastive", ZorroContrastive, models=("zorro", "full_attention")),
    }


def fusion_tuning_stage2(ctx, **kw):
    """Fusion Tuning's stage 2: the stage-1 runs' confidences, and their encoders loaded into the model."""
    import torch

    from avlab.methods.fusion_tuning import FusionTuning

    folders = _pairs_text(ctx.args.stage1, "--stage1")
    if set(folders) != {"audio", "visual"}:
        raise UsageError(STAGE1_HINT)
    n = len(ctx.splits["train"])
    conf = {}
    for modality, folder in folders.items():
        path = Path(folder) / CONFIDENCES
        if not path.is_file():
            raise UsageError(f"--stage1 {modality}={folder}: no {CONFIDENCES} there; {STAGE1_HINT}")
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("modality") != modality:
            raise UsageError(f"{path} holds {saved.get('modality')} confidences, not {modality}")
        if len(saved["confidence"]) != n:
            raise UsageError(f"{path} was recorded on {len(saved['confidence'])} training samples, this run trains "
                             f"on {n}: use the same --data and --data-arg as stage 1")
        conf[modality] = saved["confidence"]
        checkpoint = Path(folder) / "checkpoint.pt"
        if checkpoint.is_file():  # stage 2 fine-tunes from the stage-1 encoders
            teacher = load_teachers([f"{modality}={checkpoint}"], lambda: ctx.build(ctx.splits["train"]))[modality]
            ctx.model.encoder(modality).load_state_dict(teacher.encoder(modality).state_dict())
    return FusionTuning(conf["audio"], conf["visual"], **kw)


CONFIDENCES = "confidences.pt"


def _default_model(data, args):
    from avlab.experiment import build_model

    return build_model(data, args.fusion, args.width)


def _transformer(zorro: bool):
    def build(data, args):
        from avlab.models.zorro import build_transformer

        return build_transformer(data, zorro=zorro, dim=args.width)
    return build


METHODS: dict = {}  # filled on first use (importing the methods imports torch): see `methods()`
MODELS: dict = {"av": _default_model, "zorro": _transformer(True), "full_attention": _transformer(False)}
INITS = ("random", "cross-modal", "abri", "bn-reset")


def methods() -> dict:
    """name -> `avlab.methods.registry.MethodEntry` (or a plain factory(ctx, **options) added by hand)."""
    if not METHODS:
        from avlab.methods.registry import registry

        METHODS.update(registry(_explicit_methods()))
    return METHODS


def load_teachers(specs, build) -> dict:
    """{modality: model} from ["audio=path", ...]; each model gets the encoder weights of that modality."""
    import torch

    from avlab.models.classifier import MODALITIES

    teachers = {}
    for spec in specs:
        modality, _, path = spec.partition("=")
        if modality not in MODALITIES or not path:
            raise UsageError(f"avlab: --teachers takes MODALITY=PATH with MODALITY in {MODALITIES}, got {spec!r}")
        if not Path(path).is_file():
            raise UsageError(f"avlab: teacher checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise UsageError(f"avlab: teacher checkpoint {path} cannot be read ({err})") from err
        weights = state.get("model", state) if isinstance(state, dict) else None
        model = build()
        keys = [k for k in model.state_dict() if k.startswith(modality + ".")]
        missing = [k for k in keys if not isinstance(weights, dict) or k not in weights]
        if missing:
            raise UsageError(f"avlab: {path} holds no {modality} encoder of this architecture (missing {missing[:3]}); "
                             "train the teacher with the same --data, --width and --model")
        try:
            model.load_state_dict({k: weights[k] for k in keys}, strict=False)
        except RuntimeError as err:
            raise UsageError(f"avlab: the {modality} encoder in {path} does not fit this model ({err})") from err
        teachers[modality] = model
    return teachers


# ----------------------------------------------------------------------------- argument parsing

def _pairs_text(items, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"avlab: {flag} takes KEY=VALUE, got {item!r}")
        out[key.replace("-", "_")] = value
    return out


def _pairs(items, flag: str) -> dict:
    from avlab.methods.registry import literal
    return {k: literal(v) for k, v in _pairs_text(items, flag).items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avlab", description="avlab: audio-visual learning when modalities do not cooperate")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a method on a dataset (resumes from <out>/checkpoint.pt)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", required=True, help=DATASET_HELP)
    t.add_argument("--root", default=None, help="folder of the preprocessed real datasets (default: $AVLAB_DATA)")
    t.add_argument("--data-arg", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. n_train=1500 (AV-Digits), num_frames=3 or image_size=112 (real data)")
    t.add_argument("--method", default="joint", help="one of `avlab list`'s methods, or several joined by + "
                                                      "(a composition, e.g. umt+mlb)")
    t.add_argument("--method-arg", action="append", metavar="KEY=VALUE",
                   help="method option, e.g. alpha=0.8 (in a composition: mlb.alpha=0.8)")
    t.add_argument("--teachers", nargs="+", metavar="MODALITY=CHECKPOINT", help="UMT's uni-modal teachers")
    t.add_argument("--stage1", nargs="+", metavar="MODALITY=RUN_FOLDER",
                   help="Fusion Tuning stage 2: the stage-1 run folders (their confidences.pt and encoders)")
    t.add_argument("--init", default="random", choices=INITS,
                   help="audio encoder's start: random, or the shipped pre-trained visual ResNet-18 "
                        "(cross-modal), plus ABRi or a BN reset (chapter 04); needs --width 8")
    t.add_argument("--abri-mode", default="layer", choices=["layer", "channel"], help="--init abri: one mixing "
                                                                                      "weight per BN layer or channel")
    t.add_argument("--model", default="av", help="av (ResNet-18 encoders + --fusion), zorro or full_attention "
                                                 "(transformers, --width = their dim)")
    t.add_argument("--fusion", default="concat", choices=["sum", "concat", "film", "gated"])
    t.add_argument("--width", type=int, default=None, help="ResNet-18 width (64 = the real one; default 8 on "
                                                            "AV-Digits, 64 on real data; 8 with --init)")
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

    from avlab import bench as B  # the grid's defaults, for the help text
    b = sub.add_parser("bench", help="the benchmark grid: methods x fusions x optimizers x presets x seeds on "
                                     "AV-Digits -> <out>/grid.csv, summary.md, *.png (resumable)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--methods", default=",".join(B.METHODS), help="comma-separated")
    b.add_argument("--fusions", default=",".join(B.FUSIONS), help="comma-separated")
    b.add_argument("--optimizers", default=",".join(B.OPTIMIZERS), help="comma-separated: sgd (momentum 0.9), adam")
    b.add_argument("--presets", default=",".join(B.PRESETS), help="comma-separated AV-Digits presets")
    b.add_argument("--seeds", default=",".join(map(str, B.SEEDS)), help="comma-separated, or a range such as 0-4")
    b.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU core; 0: "
                                                            "in this process)")
    b.add_argument("--out", default="results", help="folder of grid.csv, summary.md and the figures")
    b.add_argument("--budget", default="quick", choices=list(B.BUDGETS),
                   help="the per-run data and training budget (avlab.bench.BUDGETS): quick, or chapter01 (chapter "
                        "01's data and 6 epochs, as chapter 07 uses)")
    b.add_argument("--epochs", type=int, default=None, help="per run (default: the budget's)")
    b.add_argument("--n-train", type=int, default=None, help="training samples per run (default: the budget's)")
    return parser


# ----------------------------------------------------------------------------- commands

def load_data(spec: str, root, options: dict) -> tuple[str, dict]:
    """(name, splits) for `--data`; a name, preset, option or folder that is wrong is a UsageError."""
    name, _, preset = spec.partition(":")
    try:
        if name.lower() in ("avdigits", "av-digits", "av_digits"):
            from avlab.data import load_avdigits
            from avlab.data.avdigits import PRESETS

            preset = preset or options.pop("preset", "dominant_audio")
            if preset not in PRESETS:
                raise UsageError(f"--data {spec}: unknown AV-Digits preset {preset!r}; choose one of "
                                 f"{', '.join(PRESETS)}")
            return f"avdigits:{preset}", load_avdigits(preset, **options)
        from avlab.data.realdata import ALIASES, REAL_DATASETS, load_real
        from avlab.utils import data_dir

        key = ALIASES.get(name.lower(), name.lower())
        if key not in REAL_DATASETS:
            raise UsageError(f"--data {spec}: unknown dataset; choose avdigits[:preset] or one of "
                             f"{', '.join(sorted(REAL_DATASETS))}")
        folder = Path(root).expanduser() if root else data_dir()
        try:
            splits = load_real(name, folder, **options)
        except FileNotFoundError as err:
            where = "--root" if root else "$AVLAB_DATA (no --root given)"
            raise UsageError(f"--data {spec}: no preprocessed {key} under {where} {folder} ({err}); pass --root "
                             f"FOLDER, the --out of `python -m avlab preprocess {key}`") from None
        return name.lower(), splits
    except (ValueError, TypeError, KeyError) as err:  # e.g. an unknown --data-arg
        raise UsageError(f"--data {spec} with options {options}: {err}") from None


def plan_method(args) -> list[tuple[str, object, dict]]:
    """[(name, registry entry, options), ...] for `--method a+b` and its `--method-arg`s, checked against each
    constructor's signature, and the composition's declared conflicts, all before any data is loaded."""
    from avlab.methods.compose import check_conflicts
    from avlab.methods.registry import OptionError, literal, split_options

    registry = methods()
    names = [n.strip() for n in args.method.split("+")]
    for n in names:
        if n not in registry:
            raise UsageError(f"avlab: unknown method {n!r}; choose one of {sorted(registry)} (`python -m avlab list` "
                             "shows their options), or join several with +")
    if len(set(names)) < len(names):
        raise UsageError(f"--method {args.method}: a method appears twice")
    texts = _pairs_text(args.method_arg, "--method-arg")
    try:
        routed = split_options(names, texts, registry)
        plan = [(n, registry[n], registry[n].parse(routed[n]) if hasattr(registry[n], "parse")
                 else {k: literal(v) for k, v in routed[n].items()}) for n in names]
        if len(names) > 1:
            check_conflicts([(n, e.claims() if hasattr(e, "claims") else frozenset()) for n, e, _ in plan])
    except OptionError as err:
        raise UsageError(str(err)) from None
    except ValueError as err:
        raise UsageError(f"--method {args.method}: {err}") from None
    for n, entry, _ in plan:
        if getattr(entry, "models", None) and args.model not in entry.models:
            raise UsageError(f"{n} needs --model {' or '.join(entry.models)}, not {args.model}")
        missing = entry.check(args) if getattr(entry, "check", None) else None
        if missing:
            raise UsageError(missing)
    return plan


def build_method(plan, ctx):
    """The Method of the plan: one part alone, or their `Compose` in the order given."""
    from avlab.methods.compose import Compose

    train = ctx.splits["train"]
    context = {"num_samples": len(train), "num_classes": getattr(train, "num_classes", None), "train": train,
               "train_data": train}
    held_out = ctx.splits.get("val")
    if held_out is not None:  # never the test split
        context.update(holdout=held_out, heldout=held_out, val=held_out, val_data=held_out)
    parts = []
    for name, entry, options in plan:
        try:
            parts.append(entry.build(ctx, context, **options) if hasattr(entry, "build") else entry(ctx, **options))
        except (ValueError, TypeError) as err:
            raise UsageError(f"--method {name} with {options}: {err}") from None
    try:
        return parts[0] if len(parts) == 1 else Compose(*parts)
    except ValueError as err:
        raise UsageError(f"--method {ctx.args.method}: {err}") from None


def initialise(model, args) -> dict:
    """`--init`: the audio encoder from the shipped pre-trained visual ResNet-18, then ABRi or a BN reset."""
    if args.init == "random":
        return {}
    from avlab.methods.abri import initialise_encoder
    from avlab.weights.pretrain import CHECKPOINT, pretrained_visual_state

    init = {"cross-modal": "cross-modal", "abri": "ABRi", "bn-reset": "BN reset"}[args.init]
    try:
        report = initialise_encoder(model, init, pretrained_visual_state(), "audio", abri_mode=args.abri_mode)
    except ValueError as err:
        raise UsageError(f"--init {args.init}: {err}") from None
    info = {"init": args.init, "source": CHECKPOINT, "loaded": len(report["loaded"])}
    if args.init == "abri":
        info["abri_mode"] = args.abri_mode
    elif args.init == "bn-reset":
        info["bn_channels_reset"] = report["bn_channels_reset"]
    return info


def _parts(method) -> list:
    return list(getattr(method, "parts", [method]))


def save_confidences(method, out: Path, args, name: str) -> Path | None:
    """Fusion Tuning stage 1: `<out>/confidences.pt` from the run's ConfidenceRecorder, if it has one."""
    import torch

    from avlab.methods.fusion_tuning import ConfidenceRecorder

    recorders = [p for p in _parts(method) if isinstance(p, ConfidenceRecorder)]
    if not recorders:
        return None
    rec = recorders[0]
    modality = rec.source if rec.source in ("audio", "visual") else "+".join(args.modalities)
    path = out / CONFIDENCES
    torch.save({"confidence": rec.mean_confidence(), "modality": modality, "data": name, "source": rec.source,
                "num_samples": rec.num_samples}, path)
    return path


def cmd_train(args) -> dict:
    from avlab import distributed
    from avlab.evaluation import evaluate
    from avlab.train import TrainConfig
    from avlab.utils import seed_everything

    # every check that needs no data first: a typo should not cost a data load or an epoch
    if args.model not in MODELS:
        raise UsageError(f"avlab: unknown model {args.model!r}; choose one of {sorted(MODELS)}")
    plan = plan_method(args)
    if args.init != "random":
        if args.model != "av":
            raise UsageError(f"--init {args.init} initialises the ResNet-18 audio encoder of --model av, "
                             f"not {args.model}")
        if args.width not in (None, 8):
            raise UsageError(f"--init {args.init} loads the shipped width-8 ResNet-18: use --width 8, not {args.width}")
        if "audio" not in args.modalities:
            raise UsageError(f"--init {args.init} initialises the audio encoder: keep audio in --modalities")
        args.width = 8
    try:
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                             weight_decay=args.weight_decay, scheduler=args.scheduler, seed=args.seed,
                             modalities=tuple(args.modalities), device=args.device, amp=not args.no_amp,
                             grad_clip=args.grad_clip, num_workers=args.workers, progress=not args.no_progress)
    except ValueError as err:
        raise UsageError(str(err)) from None

    me = distributed.init_from_env()
    try:
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

        build_fn = MODELS[args.model]
        ctx = RunContext(args, splits, build=lambda data: build_fn(data, args))
        seed_everything(args.seed)  # the initial weights are part of what a seed fixes
        try:
            model = ctx.build(train)
        except ValueError as err:
            raise UsageError(f"--model {args.model} on {name}: {err}") from None
        init = initialise(model, args)
        ctx.model = model
        method = build_method(plan, ctx)
        if me.world_size > 1 and any(type(p).__name__ == "ConfidenceRecorder" for p in _parts(method)):
            # each process would see only its share of the samples, and only rank 0 saves
            raise UsageError("confidence_recorder (Fusion Tuning stage 1) runs on one process, not under torchrun")
        try:
            trainer = distributed.DistributedTrainer(model, config, method, checkpoint=checkpoint,
                                                     record=out / "record.json", sync_batchnorm=not args.no_sync_bn,
                                                     find_unused_parameters=True if args.find_unused else None)
        except ValueError as err:  # a method's setup refusing this run (modalities, fusion, model)
            raise UsageError(f"--method {args.method}: {err}") from None
        fusion = getattr(model, "fusion_name", args.fusion)
        say(f"avlab: {name} (train {len(train)}, val {len(val) if val is not None else 0}), method {method.name}, "
            f"model {args.model}, fusion {fusion}, width {args.width}, {me.world_size} process(es) on "
            f"{trainer.device}{', mixed precision' if trainer.use_amp else ''}; run folder {out}")
        try:
            run = trainer.fit(train, val)
        except (ValueError, RuntimeError) as err:
            if str(err).startswith(f"checkpoint {checkpoint}"):  # written with other settings, or unreadable
                raise UsageError(f"{err}; or pass --restart") from None
            raise
        row = {"data": name, "method": method.name, "fusion": fusion, "modalities": "+".join(args.modalities),
               "seed": args.seed, "epochs": len(run.history)}
        if init:
            row["init"] = args.init
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
            if init:  # the record of how the weights started
                record = json.loads((out / "record.json").read_text())
                record["init"] = init
                (out / "record.json").write_text(json.dumps(record, indent=1, default=str))
            if save_confidences(method, out, args, name) is not None:
                row["confidences"] = str(out / CONFIDENCES)
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
    registry = methods()
    print("methods:   " + " ".join(registry) + "  (join several with + to compose them, e.g. umt+mlb; options "
          "as --method-arg KEY=VALUE, in a composition PART.KEY=VALUE)")
    for name, entry in registry.items():
        print(f"  {name:<20} " + (entry.describe() if hasattr(entry, "describe") else "(options not declared)"))
    print("models:    " + " ".join(MODELS))
    print("inits:     " + " ".join(INITS) + "  (--init: the audio encoder's start)")
    print("fusions:   " + " ".join(FUSIONS))


def _names(text: str, flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{flag} is empty: give comma-separated names")
    return names


def _seeds(text: str) -> list[int]:
    seeds = []
    for part in _names(text, "--seeds"):
        low, dash, high = part.partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(part)]
        except ValueError:
            raise UsageError(f"--seeds takes integers such as 0,1,2 or 0-4, got {text!r}") from None
    return seeds


def cmd_bench(args) -> dict:
    from avlab import bench

    if any(v is not None and v < 1 for v in (args.epochs, args.n_train)):
        raise UsageError(f"--epochs and --n-train must be positive, got {args.epochs} and {args.n_train}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    try:
        return bench.run_grid(_names(args.methods, "--methods"), _names(args.fusions, "--fusions"),
                              _names(args.optimizers, "--optimizers"), _names(args.presets, "--presets"),
                              _seeds(args.seeds), workers=args.workers, out=args.out, budget=args.budget,
                              data={} if args.n_train is None else {"n_train": args.n_train},
                              train={} if args.epochs is None else {"epochs": args.epochs})
    except bench.BenchError as err:
        raise UsageError(str(err)) from None


def run(argv=None):
    """Parse and run one command; returns its result (train: the results row; preprocess: the report; bench:
    the grid's counts)."""
    args = build_parser().parse_args(argv)
    return {"train": cmd_train, "preprocess": cmd_preprocess, "list": cmd_list, "bench": cmd_bench}[args.command](args)


def main(argv=None) -> None:
    """The console script (`[project.scripts] avlab = "avlab.cli:main"`): a user error is one line on stderr
    and exit code 2, as argparse does for a malformed command line."""
    try:
        run(argv)
    except UsageError as err:
        print(err.code, file=sys.stderr)
        raise SystemExit(UsageError.code_on_exit) from None


if __name__ == "__main__":
    main(sys.argv[1:])
