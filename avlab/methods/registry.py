"""Every method by name, with its options read from its constructor: what `python -m avlab train --method` and
`python -m avlab list` use.

    entries = registry()                      # {"joint": MethodEntry, "ogm_ge": ..., "mlb": ..., ...}
    entries["ogm_ge"].options()               # {"alpha": Option(float, 0.8), "start": ..., ...}
    entries["ogm_ge"].parse({"alpha": "0.5"}) # {"alpha": 0.5}; OptionError naming the option otherwise

A new method needs no edit here: every `Method` subclass exported by `avlab.methods` that sets a class-level
`name` is found. Its options are its constructor's parameters, typed by their annotations (float, int, bool,
str, `X | None`, tuple) or, where unannotated, by their default. Parameters named like the run's context
(`CONTEXT_PARAMS`: num_samples, num_classes, train, holdout / val) are filled by the caller from the data, not
by the user. Methods that need other context (UMT's teachers, Fusion Tuning's stage-1 confidences) get an
explicit entry with a factory (`avlab.cli`).
"""
from __future__ import annotations

import ast
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from avlab.methods.base import Method

CONTEXT_PARAMS = ("num_samples", "num_classes", "train", "train_data", "holdout", "heldout", "val", "val_data")
REQUIRED = inspect.Parameter.empty


class OptionError(ValueError):
    """A method option that does not exist or does not parse; the message says how to fix it."""


@dataclass
class Option:
    name: str
    kind: str  # "float", "int", "bool", "str", "tuple", "value" (any Python literal); "| None" when optional
    default: Any = REQUIRED

    def describe(self) -> str:
        default = "" if self.default is REQUIRED else f"={self.default!r}"
        return f"{self.name}{default} ({self.kind})"

    def convert(self, text: str):
        """The option's value from its command-line text."""
        base, _, optional = self.kind.partition(" | ")
        if optional and text.strip().lower() == "none":
            return None
        try:
            if base == "float":
                return float(text)
            if base == "int":
                return int(text)
            if base == "bool":
                low = text.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return low in ("true", "1", "yes")
            if base == "str":
                return text
            value = ast.literal_eval(text) if base == "tuple" else literal(text)
            if base == "tuple":
                if not isinstance(value, (tuple, list)):
                    raise ValueError(text)
                return tuple(value)
            return value
        except (ValueError, SyntaxError):
            article = "an" if base[0] in "aeiou" else "a"
            hint = {"bool": " (true or false)", "tuple": " such as (4,4)"}.get(base, "")
            raise OptionError(f"{self.name} takes {article} {base}{hint}{' or none' if optional else ''}, "
                              f"got {text!r}") from None


def literal(text: str):
    """A command-line value as Python: true/false/none, a literal (0.5, (4, 4), 'x'), else the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_SIMPLE = {float: "float", int: "int", bool: "bool", str: "str", tuple: "tuple"}


def option_kind(annotation, default) -> str:
    """"float", "int | None", ... from an annotation (a type, a union, or its text under postponed
    evaluation), else from the default's type; "value" when neither says."""
    names: list[str] = []
    if isinstance(annotation, str):
        text = annotation.replace("typing.", "").replace(" ", "")
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional["):-1] + "|None"
        names = [n.split("[")[0] for n in text.split("|")]
    elif annotation is not REQUIRED:
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or \
            typing.get_origin(annotation) is typing.Union else (annotation,)
        names = ["None" if a is type(None) else _SIMPLE.get(typing.get_origin(a) or a, "value") for a in args]
    optional = "None" in names or (default is None)
    names = [n for n in names if n != "None"]
    if len(names) == 1 and names[0] in _SIMPLE.values():
        base = names[0]
    elif not names and default is not REQUIRED and default is not None and type(default) in _SIMPLE:
        base = _SIMPLE[type(default)]
    else:
        base = "value"
    return base + (" | None" if optional and base != "value" else "")


@dataclass
class MethodEntry:
    """One name of the registry. `make(ctx, **options)` builds the method (default: `cls(**fixed, **options)`);
    `provided` are constructor parameters the factory fills itself; `fixed` are arguments this name sets
    (`ogm`: noise=False); `owns` overrides `cls.owns` where `fixed` changes it; `models`: the only models it runs
    on (None: any); `needs`: a one-line hint printed by `avlab list`; `check(args)`: what is missing from the
    parsed command line (a one-line message), or None, asked before any data is loaded."""
    name: str
    cls: type
    make: Callable | None = None
    provided: tuple = ()
    fixed: dict = field(default_factory=dict)
    owns: frozenset | None = None
    models: tuple | None = None
    needs: str = ""
    check: Callable | None = None

    def options(self) -> dict[str, Option]:
        params = list(inspect.signature(self.cls.__init__).parameters.values())[1:]
        return {p.name: Option(p.name, option_kind(p.annotation, p.default), p.default) for p in params
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in self.provided
                and p.name not in self.fixed and p.name not in CONTEXT_PARAMS}

    def context_params(self) -> list[str]:
        params = inspect.signature(self.cls.__init__).parameters
        return [p for p in CONTEXT_PARAMS if p in params and p not in self.provided and p not in self.fixed]

    def claims(self) -> frozenset:
        return self.owns if self.owns is not None else frozenset(getattr(self.cls, "owns", frozenset()))

    def parse(self, texts: dict[str, str]) -> dict:
        """{option: value} from {option: text}: unknown names and bad values raise OptionError; required
        options that are missing too."""
        options, values = self.options(), {}
        for key, text in texts.items():
            if key not in options:
                listing = ", ".join(f"{o.name} ({o.kind})" for o in options.values()) or "none"
                raise OptionError(f"{self.name} has no option {key!r}; its options are {listing}")
            try:
                values[key] = options[key].convert(text)
            except OptionError as err:
                raise OptionError(f"--method-arg {key}={text}: {err}") from None
        missing = [o.name for o in options.values() if o.default is REQUIRED and o.name not in values]
        if missing:
            raise OptionError(f"{self.name} needs {', '.join(missing)}: pass --method-arg "
                              + " ".join(f"{m}=..." for m in missing))
        return values

    def build(self, ctx, context: dict, **options) -> Method:
        extra = {k: context[k] for k in self.context_params() if k in context}
        if self.make is not None:
            return self.make(ctx, **self.fixed, **extra, **options)
        return self.cls(**self.fixed, **extra, **options)

    def describe(self) -> str:
        options = ", ".join(o.describe() for o in self.options().values()) or "no options"
        notes = [self.needs] if self.needs else []
        if self.models:
            notes.append(f"--model {' or '.join(self.models)}")
        return options + (f"  [{'; '.join(notes)}]" if notes else "")


def discover() -> dict[str, type]:
    """{name: class} of every Method subclass exported by `avlab.methods` with a class-level `name`."""
    import avlab.methods as package
    from avlab.methods.compose import Compose

    found = {}
    for obj in vars(package).values():
        if isinstance(obj, type) and issubclass(obj, Method) and obj is not Compose and "name" in vars(obj):
            found.setdefault(vars(obj)["name"], obj)
    return dict(sorted(found.items()))


def registry(explicit: dict[str, MethodEntry] | None = None) -> dict[str, MethodEntry]:
    """The explicit entries, then every discovered method whose name they do not already hold."""
    entries = dict(explicit or {})
    for name, cls in discover().items():
        entries.setdefault(name, MethodEntry(name, cls))
    return entries


def split_options(names: list[str], texts: dict[str, str], entries: dict) -> dict[str, dict[str, str]]:
    """Route {"alpha": "0.5", "mlb.alpha": "0.3"} to the parts of a composition: a `part.option` key goes to
    that part; a plain key to the one part that has that option (an error if none or several do)."""
    routed = {n: {} for n in names}
    for key, text in texts.items():
        part, dot, option = key.rpartition(".")
        if dot:
            if part not in routed:
                raise OptionError(f"--method-arg {key}: {part!r} is not a part of {'+'.join(names)}")
            routed[part][option] = text
            continue
        having = [n for n in names if hasattr(entries[n], "options") and key in entries[n].options()]
        if len(names) == 1:
            routed[names[0]][key] = text
        elif len(having) == 1:
            routed[having[0]][key] = text
        elif having:
            raise OptionError(f"--method-arg {key}: {' and '.join(having)} both take {key!r}; write "
                              f"{having[0]}.{key}=... or {having[1]}.{key}=...")
        else:
            listing = "; ".join(f"{n}: {', '.join(entries[n].options()) or 'none'}" for n in names
                                if hasattr(entries[n], "options"))
            raise OptionError(f"no part of {'+'.join(names)} has an option {key!r}; the options are {listing}")
    return routed
