"""Several plug-ins in one training loop: `Compose(UMT(teachers), MLB())`.

Every hook runs each part in the order given, so the order of the arguments is the order of the effects:

    setup            part 1, part 2, ...
    on_epoch_start   part 1, part 2, ...
    transform_batch  chained: part 2 transforms what part 1 returned
    losses           merged into one dict; two parts returning the same key is an error naming both
    backward         the one part that owns "backward" (see below), else the loop's default
    after_backward   part 1, part 2, ... (each sees the gradients the earlier parts left); logs merged, a log
                     key already taken by an earlier part gets the later part's name as a prefix
    on_epoch_end     part 1, part 2, ...
    state_dict       one entry per part, in order; load_state_dict checks the parts are the same
    config           {"parts": [{"name": ..., **part.config()}, ...]}: the run record lists every part
    any other hook   a hook of `Method` that Compose does not list above (added later), or one only a part
                     has: the one part that defines it; two parts defining it is an error at construction

Conflicts are declared, not guessed: each method says in `Method.owns` what it takes over (a base loss, an
encoder's gradients, the fused head, the batch, the backward pass, the weights; see `avlab.methods.base`).
Two parts that claim the same token are refused when the composition is built, with an error naming both
methods and what they both claim: OGM-GE and MLB both rescale the encoders' gradients (`grad:audio`,
`grad:visual`), and applying both would multiply two coefficients that were each tuned alone. A token
`"<kind>:*"` claims every token of that kind (`"grad:*"` clashes with `"grad:audio"`).
"""
from __future__ import annotations

from avlab.methods.base import Method


def claims(method) -> frozenset[str]:
    """What `method` takes over: its declared `owns`, plus "backward" where it brings its own backward pass."""
    owns = frozenset(getattr(method, "owns", frozenset()))
    if isinstance(method, Compose):  # a composition's claims are its parts'
        return owns
    if _custom_backward(method):
        owns |= {"backward"}
    return owns


def _custom_backward(method) -> bool:
    mine = getattr(type(method), "backward", None)
    return mine is not None and mine is not getattr(Method, "backward", None)


def _clash(a: str, b: str) -> bool:
    if a == b:
        return True
    kind_a, _, what_a = a.partition(":")
    kind_b, _, what_b = b.partition(":")
    return kind_a == kind_b and "*" in (what_a, what_b)


def conflicts(named: list[tuple[str, frozenset]]) -> list[tuple[str, str, list[str]]]:
    """[(name_1, name_2, [tokens both claim]), ...] for every pair of (name, owns) that clash."""
    found = []
    for i, (name_a, owns_a) in enumerate(named):
        for name_b, owns_b in named[i + 1:]:
            both = sorted({a for a in owns_a for b in owns_b if _clash(a, b)}
                          | {b for a in owns_a for b in owns_b if _clash(a, b)})
            if both:
                found.append((name_a, name_b, both))
    return found


def check_conflicts(named: list[tuple[str, frozenset]]) -> None:
    """Raise ValueError naming both methods and what they both claim, for the first conflicting pair."""
    found = conflicts(named)
    if found:
        a, b, both = found[0]
        raise ValueError(f"{a} and {b} cannot be composed: both claim {', '.join(both)} "
                         f"({_meaning(both)}); use one of them")


MEANINGS = {"loss": "replace the same base loss", "grad": "rescale the same encoder's gradients",
            "head": "replace the fused classifier head", "batch": "change the inputs",
            "backward": "run their own backward pass", "weights": "re-initialise weights during training"}


def _meaning(tokens: list[str]) -> str:
    kinds = dict.fromkeys(t.partition(":")[0] for t in tokens)
    return "; ".join(MEANINGS.get(k, k) for k in kinds)


class Compose(Method):
    """`Compose(part_1, part_2, ...)`: the parts' hooks, in order (see the module docstring). Its name is the
    parts' names joined by "+" ("umt+mlb"); `Compose(m)` trains exactly as `m` alone."""

    def __init__(self, *parts: Method):
        if not parts:
            raise ValueError("Compose needs at least one method, e.g. Compose(UMT(teachers), MLB())")
        bad = [p for p in parts if not isinstance(p, Method)]
        if bad:
            raise TypeError(f"Compose takes Method instances, got {bad}")
        self.parts = tuple(parts)
        self.name = "+".join(p.name for p in self.parts)
        check_conflicts([(p.name, claims(p)) for p in self.parts])
        self.owns = frozenset().union(*(claims(p) for p in self.parts))
        # hooks of Method that this class does not combine (added to the loop after it was written): the one
        # part that overrides a hook gets it; two that do cannot be combined without knowing what it means
        for hook in [h for h in vars(Method) if not h.startswith("_") and callable(vars(Method)[h])
                     and h not in vars(Compose)]:
            owners = [p for p in self.parts if getattr(type(p), hook, None) is not vars(Method)[hook]]
            if len(owners) > 1:
                raise ValueError(f"{owners[0].name} and {owners[1].name} both define the hook {hook!r}, which "
                                 "Compose does not know how to combine")
            if owners:
                setattr(self, hook, getattr(owners[0], hook))

    def __getattr__(self, name: str):
        """An attribute only parts have (a hook the loop looks for with hasattr): the one part that has it."""
        parts = self.__dict__.get("parts", ())
        owners = [p for p in parts if not name.startswith("_") and hasattr(p, name)]
        if len(owners) == 1:
            return getattr(owners[0], name)
        if owners:
            raise TypeError(f"{owners[0].name} and {owners[1].name} both define {name!r}; Compose cannot choose")
        raise AttributeError(f"no part of {self.__dict__.get('name', 'Compose')} has {name!r}")

    # ------------------------------------------------------------------ hooks, part by part
    def setup(self, trainer) -> None:
        for p in self.parts:
            p.setup(trainer)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        for p in self.parts:
            p.on_epoch_start(trainer, epoch)

    def transform_batch(self, batch: dict, trainer) -> dict:
        for p in self.parts:
            batch = p.transform_batch(batch, trainer)
        return batch

    def losses(self, out: dict, batch: dict, trainer) -> dict:
        merged, source = {}, {}
        for p in self.parts:
            for key, value in p.losses(out, batch, trainer).items():
                if key in merged:
                    raise ValueError(f"{source[key]} and {p.name} both return the loss {key!r}; one of them must "
                                     f"declare owns={{'loss:{key}'}} and the two cannot be composed")
                merged[key], source[key] = value, p.name
        return merged

    def backward(self, loss, losses, trainer):
        """The backward pass of the one part that brings its own (it owns "backward"), else the loop's."""
        for p in self.parts:
            if _custom_backward(p):
                return p.backward(loss, losses, trainer)
        default = getattr(super(), "backward", None)
        if default is not None:
            return default(loss, losses, trainer)
        trainer.scaler.scale(loss).backward()  # what the loop does when Method has no backward hook
        return None

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        logs = {}
        for p in self.parts:
            for key, value in p.after_backward(out, batch, trainer).items():
                logs[key if key not in logs else f"{p.name}_{key}"] = value
        return logs

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        for p in self.parts:
            p.on_epoch_end(trainer, epoch, record)

    # ------------------------------------------------------------------ state and record
    def state_dict(self) -> dict:
        return {"names": [p.name for p in self.parts], "parts": [p.state_dict() for p in self.parts]}

    def load_state_dict(self, state: dict) -> None:
        names = [p.name for p in self.parts]
        if state.get("names") != names:
            raise ValueError(f"the checkpoint's method is the composition {state.get('names')}, not {names}")
        for p, s in zip(self.parts, state["parts"]):
            p.load_state_dict(s)

    def config(self) -> dict:
        return {"parts": [{"name": p.name, **p.config()} for p in self.parts]}
