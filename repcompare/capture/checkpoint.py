"""Reading checkpoints safely and fitting their keys to a model.

Nothing here executes code from a checkpoint: ``.safetensors`` files hold only
tensors, and every other format goes through ``torch.load(weights_only=True)``,
which refuses pickles that would construct arbitrary objects. The one class
allowed beyond torch's own is ``argparse.Namespace`` (``SAFE_GLOBALS``): DINO and
MAE training checkpoints store their arguments in one, a plain attribute bag.

Loading a checkpoint into a model (``load_checkpoint_into``: ``unwrap``, then
``fit_state_dict``):

0. with ``key`` (``--key PREFIX``), descend the dict keys the prefix names and keep
   only the tensors under the rest of it;
1. unwrap containers: the first of ``CONTAINER_KEYS`` holding a dict, repeatedly
   (Lightning's ``state_dict``, ...). When a level (the dicts of one dict, or the key
   components under one key prefix) holds several encoders, recognised by name
   (``_pairs``: ``teacher``/``student``, ``base_encoder``/``momentum_encoder``,
   ``encoder_q``/``encoder_k``, ``backbone``/``momentum_backbone``,
   ``online_*``/``target_*``, ``encoder``/``target_encoder``, ``model``/``model_ema``,
   ``state_dict``/``state_dict_ema``, ...), never by their order, take the one asked for
   (``--encoder``), else the default of that pair (``PAIRS``), and report it. A checkpoint
   holding only an EMA copy, or several state dicts none of these names tell apart, is
   refused with the ``--key`` or ``--encoder`` that loads each;
2. strip key prefixes (``STRIP_PREFIXES``, or the first one to three key
   components, e.g. ``module.base_encoder.``), the best one at a time, while
   stripping increases the number of keys the model has; two prefixes that each give
   the model's tensors (two copies of the network under names not recognised in step
   1) are refused with the ``--key`` of each;
3. apply the model's own conversion (``filter_fn``: timm's ``checkpoint_filter_fn``
   of the model's module: official DINOv2 register layouts, position embeddings
   resampled to the model's input size, ...) and report what it changed;
4. drop head tensors (first key component in ``HEAD_PREFIXES``) that the model
   lacks or has in another shape: an SSL projector, a classifier for another
   number of classes. Model head weights the checkpoint lacks stay at their
   initialisation and are reported;
5. cast floating-point tensors (float16, bfloat16) to the model's dtype;
6. refuse the result if backbone weights are missing or it holds layers the
   model lacks inside modules the model has (a deeper variant of the
   architecture: ResNet-34 weights for a ResNet-18, a 12-block ViT for a 6-block
   one), unless allowed, or if any non-head tensor has the wrong shape: a
   silently random or silently truncated network would make every similarity
   meaningless. Tensors of modules the model has no trace of (an MAE decoder, a
   mask token, an SSL projector) are ignored and reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from repcompare.errors import InputError

CONTAINER_KEYS = ("state_dict", "model", "module", "net", "teacher", "student", "backbone")
STRIP_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "_orig_mod.")
HEAD_PREFIXES = ("projector", "head", "heads", "fc", "prototypes", "classifier")
IGNORED_MISSING = ("num_batches_tracked",)
MAX_PREFIX_DEPTH = 3
SAFE_GLOBALS = [argparse.Namespace]
ROLES = ("teacher", "student", "base", "momentum", "online", "target", "model", "ema")
"""The ``--encoder`` values: the members of the pairs below, in the order they are listed."""
EXACT_NAMES = {
    "teacher": ("teacher", ""),
    "student": ("student", ""),
    "encoder_q": ("base", "encoder"),
    "encoder_k": ("momentum", "encoder"),
    "query_encoder": ("base", "encoder"),
    "key_encoder": ("momentum", "encoder"),
    "online": ("online", ""),
    "target": ("target", ""),
    "ema": ("ema", ""),
}
"""Names that are one member of a pair: name -> (role, the pair's stem)."""
AFFIXES = ("teacher", "student", "base", "momentum", "online", "target", "ema")
"""``WORD_STEM`` and ``STEM_WORD`` (``momentum_backbone``, ``model_ema``) are the WORD member
of the pair named STEM."""
PLAIN_ROLE = {"momentum": "base", "target": "online", "ema": "model"}
"""The role of the plain name STEM beside ``momentum_STEM``, ``target_STEM``, ``STEM_ema``:
``backbone`` is the base of ``momentum_backbone``, ``model`` the model of ``model_ema``."""
EMA_PARTNERS = ("state_dict", "model", "module", "net", "network")
"""The model an EMA copy named otherwise (``ema``, ``model_ema`` beside ``state_dict``)
averages, when its own stem is absent."""
PAIRS = (
    (
        ("teacher", "student"),
        "teacher",
        "teacher/student pair (DINO, iBOT, DINOv2)",
        "the teacher is the default, the network DINO evaluates",
    ),
    (
        ("base", "momentum"),
        "base",
        "base/momentum pair (MoCo's base/momentum and query/key encoders, momentum backbones)",
        "the base (query, online) encoder is the default, the one MoCo and BYOL evaluate",
    ),
    (
        ("online", "target"),
        "online",
        "online/target pair (BYOL)",
        "the online encoder is the default, the one BYOL evaluates",
    ),
    (
        ("model", "ema"),
        "model",
        "model/EMA pair",
        "the model as trained is the default, not its exponential moving average "
        "(as timm's validate.py without --use-ema)",
    ),
)
"""Pairs of roles: (roles, default, what the pair is, why the default)."""
JEPA_PAIR = (
    "target",
    "encoder/target_encoder pair (I-JEPA, MSN)",
    "the target encoder is the default, the one I-JEPA and MSN evaluate",
)
"""``encoder`` beside ``target_encoder``: I-JEPA's context and target encoders, MSN's anchor
and target encoders; the papers evaluate the target encoder."""


@dataclass(frozen=True)
class EncoderChoice:
    """One encoder taken among several: its role, the ``--key`` that selects it, the rest."""

    role: str
    where: str
    others: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    asked: bool = False
    pair: str = ""
    why: str = ""

    def lines(self) -> list[str]:
        if not self.others:
            return [
                f"encoder: {self.role}" + (f" ({self.where})" if self.where != self.role else "")
            ]
        how = "as asked" if self.asked else "the default; choose with --encoder"
        return [
            f"encoder: {self.role} ({how}); the checkpoint also holds "
            f"{', '.join(self.others)}, not loaded",
            f"{self.pair}: loaded {self.where}, not {', '.join(self.left)}; {self.why}",
        ]


@dataclass
class LoadReport:
    """What happened to every tensor of a checkpoint on its way into a model."""

    source: str
    container: tuple[str, ...] = ()
    encoder: str = ""
    other_encoders: tuple[str, ...] = ()
    encoder_chosen: bool = False
    encoders: tuple[EncoderChoice, ...] = ()
    stripped: tuple[str, ...] = ()
    filtered_by: str = ""
    filter_changes: tuple[str, ...] = ()
    loaded: int = 0
    cast: dict[str, int] = field(default_factory=dict)
    dropped_head: tuple[str, ...] = ()
    head_left_at_init: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    extra_layers: tuple[str, ...] = ()
    wrong_shape: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """Human-readable summary, one fact a line."""
        where = "/".join(self.container) or "top level"
        out = [f"loaded {self.loaded} tensors from {self.source} ({where})"]
        for choice in self.encoders:
            out.extend(choice.lines())
        if self.encoder and not self.encoders:
            out.append(f"encoder: {self.encoder}")
        if self.stripped:
            out.append(f"stripped key prefixes: {', '.join(self.stripped)}")
        if self.filtered_by:
            changes = "; ".join(self.filter_changes) or "no changes"
            out.append(f"applied {self.filtered_by}: {changes}")
        if self.cast:
            out.append(
                "cast to the model's dtype: "
                + ", ".join(f"{n} {dtype}" for dtype, n in sorted(self.cast.items()))
            )
        for label, keys in (
            ("dropped head tensors", self.dropped_head),
            ("head left at initialisation", self.head_left_at_init),
            ("missing", self.missing),
            ("unexpected (ignored)", self.unexpected),
            ("wrong shape", self.wrong_shape),
        ):
            if keys:
                out.append(f"{label} ({len(keys)}): {_abbreviate(keys)}")
        return out


class CheckpointMismatchError(InputError):
    """The checkpoint does not fit the architecture; carries the full load report."""

    def __init__(self, report: LoadReport):
        self.report = report
        problems = []
        if report.missing:
            problems.append(
                f"{len(report.missing)} model tensors are missing from it "
                f"({_abbreviate(report.missing, 3)})"
            )
        if report.wrong_shape:
            problems.append(
                f"{len(report.wrong_shape)} have the wrong shape "
                f"({_abbreviate(report.wrong_shape, 2)})"
            )
        if report.extra_layers:
            problems.append(
                f"{len(report.extra_layers)} of its tensors belong to layers this model lacks "
                f"({_abbreviate(report.extra_layers, 3)}), as if it were a deeper variant"
            )
        elif report.unexpected:
            problems.append(
                f"{len(report.unexpected)} of its tensors are unknown to the model "
                f"({_abbreviate(report.unexpected, 3)})"
            )
        super().__init__(
            f"checkpoint {report.source} does not fit this architecture: "
            + "; ".join(problems)
            + "; check the model name, or pass --allow-missing to load only what fits"
        )


def _abbreviate(keys: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


TRAINING_KEY = "training"  # safetensors metadata: how the weights were trained (JSON)


def training_summary(path: Path) -> str | None:
    """How a safetensors checkpoint's weights were trained, when its metadata says (the
    ``training`` entry, JSON: objective, epochs, images, final loss and the loss of chance,
    as ``repcompare demo`` writes it): one sentence; None otherwise."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        text = (handle.metadata() or {}).get(TRAINING_KEY)
    try:
        t = json.loads(text) if text else None
        return (
            f"trained with {t['objective']} for {t['epochs']} epochs on {t['images']} images "
            f"({t['steps']} steps of {t['batch_size']}): final loss {t['final_loss']:.3f}, "
            f"chance {t['chance_loss']:.3f}"
        )
    except (TypeError, KeyError, ValueError):
        return None


def read_checkpoint(path: Path) -> object:
    """The raw object in a checkpoint file, read without executing any code from it."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise InputError(f"{path} is not a readable safetensors file ({error})") from None
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); save the checkpoint again")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        forbidden = re.search(r"GLOBAL ([\w.]+)", str(error))
        if forbidden is None:
            raise InputError(f"{path} is not a readable PyTorch checkpoint") from None
        raise InputError(
            f"{path} needs arbitrary code to load (it pickles {forbidden.group(1)}, not only "
            "tensors and plain containers), so it was not loaded; re-save its state_dict with "
            "torch.save or safetensors in an environment you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise InputError(f"{path} is not a readable PyTorch checkpoint ({error})") from None


@dataclass(frozen=True)
class Unwrapped:
    """The state dict found in a checkpoint and where: containers descended, encoders taken."""

    state: dict[str, torch.Tensor]
    container: tuple[str, ...] = ()
    encoders: tuple[EncoderChoice, ...] = ()
    key: str | None = None


def _role(name: str) -> tuple[str, str]:
    """(role, stem) of a name: ``("momentum", "backbone")`` for ``momentum_backbone``;
    ``("", name)`` for a plain name."""
    if name in EXACT_NAMES:
        return EXACT_NAMES[name]
    for word in AFFIXES:
        if name.startswith(word + "_"):
            return word, name[len(word) + 1 :]
        if name.endswith("_" + word):
            return word, name[: -len(word) - 1]
    return "", name


@dataclass(frozen=True)
class _Pairs:
    """The encoders at one level: name -> role, the default role, the pair and why."""

    members: dict[str, str]
    default: str
    pair: str
    why: str

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.members.values()]


def _pairs(names: list[str]) -> _Pairs | None:
    """The pairs of encoders among sibling ``names`` (dict keys, or key components under
    one prefix), recognised by name alone; None when there is none."""
    stems: dict[str, dict[str, str]] = {}
    for name in names:
        role, stem = _role(name)
        stems.setdefault(stem, {})[name] = role
    members: dict[str, str] = {}
    for group in stems.values():
        roles = {r for r in group.values() if r}
        if not roles:
            continue
        named = {n: r for n, r in group.items() if r}
        plain = [n for n, r in group.items() if not r]
        if not plain and roles == {"ema"}:
            plain = [n for n in EMA_PARTNERS if n in names and not _role(n)[0]][:1]
        partner = next((PLAIN_ROLE[r] for r in ROLES if r in roles and r in PLAIN_ROLE), "")
        if plain and partner:
            named[plain[0]] = partner
        if len(set(named.values())) > 1:
            members.update(named)
    if not members:
        return None
    roles = set(members.values())
    if members.get("encoder") == "online" and members.get("target_encoder") == "target":
        return _Pairs(members, *JEPA_PAIR)
    for pair_roles, default, pair, why in PAIRS:
        if roles.issuperset(pair_roles):
            return _Pairs(members, default, pair, why)
    found = [r for r in ROLES if r in roles]
    return _Pairs(members, found[0], f"{'/'.join(found)} encoders", f"{found[0]} comes first")


def _choose(
    pairs: _Pairs, encoder: str | None, where: Callable[[str], str]
) -> tuple[list[str], EncoderChoice]:
    """The names of the encoder to take (``encoder`` if present, else the default), and
    the choice as reported; ``where(name)`` is the ``--key`` that selects ``name``."""
    roles = pairs.roles
    role = encoder if encoder in roles else pairs.default
    taken = [n for n, r in pairs.members.items() if r == role]
    left = [n for n, r in pairs.members.items() if r != role]
    choice = EncoderChoice(
        role=role,
        where=", ".join(where(n) for n in taken),
        others=tuple(r for r in roles if r != role),
        left=tuple(where(n) for n in left),
        asked=encoder == role,
        pair=pairs.pair,
        why=pairs.why,
    )
    return taken, choice


def _tensor_count(obj: object, depth: int = 4) -> int:
    """How many tensors a nested dict holds under string keys (a state dict, or dicts of them)."""
    if not isinstance(obj, dict) or depth == 0:
        return 0
    return sum(
        1 if torch.is_tensor(v) else _tensor_count(v, depth - 1)
        for k, v in obj.items()
        if isinstance(k, str)
    )


def _as_key(path: list[str], rest: str = "") -> str:
    return ".".join([*path, rest.rstrip(".")] if rest else path)


def _descend(obj: object, key: str, path: list[str]) -> tuple[object, str]:
    """Walk the leading dotted components of ``key`` that name dict entries of ``obj``."""
    rest = key
    while isinstance(obj, dict) and rest:
        head, _, tail = rest.partition(".")
        if not isinstance(obj.get(head), dict):
            break
        path.append(head)
        obj, rest = obj[head], tail
    return obj, rest


def _only_ema(source: str, keys: list[str]) -> InputError:
    shown = ", ".join(f"--key {k}" for k in keys)
    return InputError(
        f"{source} holds only an exponential-moving-average copy of the weights "
        f"({', '.join(keys)}), not the model it averages; pass --encoder ema (or {shown}) "
        "to load it"
    )


def _unwrap_dicts(
    obj: object,
    source: str,
    encoder: str | None,
    path: list[str],
    choices: list[EncoderChoice],
    *,
    containers_only: bool = False,
) -> dict[str, torch.Tensor]:
    """Descend dicts to the state dict, taking one encoder where a level holds several
    (only ``CONTAINER_KEYS`` with ``containers_only``: below a ``--key``)."""
    while isinstance(obj, dict):
        found = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
        if found and len(found) >= len(obj) / 2:
            return found
        sizes = {k: _tensor_count(v) for k, v in obj.items() if isinstance(k, str)}
        held = [k for k, n in sizes.items() if n and isinstance(obj[k], dict)]
        pairs = None if containers_only else _pairs(held)
        containers = [k for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)]
        if containers_only and not containers:
            break
        if pairs is not None:
            taken, choice = _choose(pairs, encoder, lambda name: _as_key(path, name))
            name = max(taken, key=lambda n: sizes[n])
            choices.append(replace(choice, where=_as_key(path, name)))
        elif containers:
            name = containers[0]
            role = _role(name)[0]
            if role and not containers_only:
                choices.append(EncoderChoice(role, _as_key(path, name), asked=encoder == role))
        elif len(held) == 1 and _role(held[0])[0]:
            name, role = held[0], _role(held[0])[0]
            if role == "ema" and encoder != "ema":
                raise _only_ema(source, [_as_key(path, name)])
            choices.append(EncoderChoice(role, _as_key(path, name), asked=encoder == role))
        elif len(held) == 1:
            raise InputError(
                f"{source} holds its tensors under {held[0]!r}, which is neither a known "
                f"container ({', '.join(CONTAINER_KEYS)}) nor a known encoder; pass "
                f"--key {_as_key(path, held[0])} to load them"
            )
        elif held:
            keys = " or ".join(f"--key {_as_key(path, k)}" for k in held)
            raise InputError(
                f"{source} holds several state dicts ({', '.join(held)}) under names that are "
                f"neither a known container ({', '.join(CONTAINER_KEYS)}) nor a known encoder; "
                f"choose one with {keys}"
            )
        else:
            break
        path.append(name)
        obj = obj[name]
    raise InputError(
        f"{source} holds no state dict of tensors (looked under {', '.join(CONTAINER_KEYS)}); "
        "save the model's state_dict() instead"
    )


def _components(state: dict[str, torch.Tensor], depth: int) -> dict[str, list[str]]:
    """Parent key prefix -> the distinct key components at ``depth`` under it (not the last
    component of a key: that names a tensor, not a module)."""
    siblings: dict[str, dict[str, None]] = {}
    for key in state:
        parts = key.split(".")
        if len(parts) > depth + 1:
            parent = "".join(p + "." for p in parts[:depth])
            siblings.setdefault(parent, {})[parts[depth]] = None
    return {parent: list(names) for parent, names in siblings.items()}


def _unwrap_keys(
    state: dict[str, torch.Tensor],
    source: str,
    encoder: str | None,
    path: list[str],
    choices: list[EncoderChoice],
) -> dict[str, torch.Tensor]:
    """Keep the tensors of one encoder where key components under one prefix name several
    (``model.backbone.`` beside ``model.momentum_backbone.``), outermost first."""
    chose = bool(choices)
    for depth in range(MAX_PREFIX_DEPTH):
        for parent, names in _components(state, depth).items():
            pairs = _pairs(names)
            if pairs is None:
                continue
            taken, choice = _choose(
                pairs, encoder, lambda name, parent=parent: _as_key(path, parent + name)
            )
            keep = tuple(f"{parent}{name}." for name in taken)
            choices.append(choice)
            state = {k: v for k, v in state.items() if k.startswith(keep)}
            return _unwrap_keys(state, source, encoder, path, choices)
    if chose:
        return state
    for depth in range(MAX_PREFIX_DEPTH):  # one encoder alone, holding every tensor
        components = _components(state, depth)
        if len(components) != 1 or any(k.count(".") <= depth for k in state):
            break
        parent, names = next(iter(components.items()))
        roles = {_role(n)[0] for n in names}
        if roles == {""}:
            continue
        if len(roles) == 1:
            role = roles.pop()
            where = [_as_key(path, parent + n) for n in names]
            if role == "ema" and encoder != "ema":
                raise _only_ema(source, where)
            choices.append(EncoderChoice(role, ", ".join(where), asked=encoder == role))
        break
    return state


def unwrap(
    obj: object, source: str, *, encoder: str | None = None, key: str | None = None
) -> Unwrapped:
    """Descend to the state dict (see the module docstring, steps 0 and 1)."""
    if encoder is not None and encoder not in ROLES:
        raise InputError(f"unknown --encoder {encoder!r}; use {', '.join(ROLES)}")
    if encoder is not None and key is not None:
        raise InputError("--encoder and --key both choose an encoder; give one of them")
    path: list[str] = []
    if key is not None:
        obj, prefix = _descend(obj, key.strip("."), path)
        tensors = _unwrap_dicts(obj, source, None, path, [], containers_only=True)
        tensors = {k: v for k, v in tensors.items() if not prefix or k.startswith(prefix + ".")}
        if not tensors:
            raise InputError(
                f"{source} has no tensors under --key {key!r}; give a prefix of its keys"
            )
        return Unwrapped(tensors, tuple(path), key=key)
    choices: list[EncoderChoice] = []
    tensors = _unwrap_dicts(obj, source, encoder, path, choices)
    tensors = _unwrap_keys(tensors, source, encoder, path, choices)
    if encoder is not None and not any(c.asked for c in choices):
        seen = {r for c in choices for r in (c.role, *c.others)}
        if not seen:
            raise InputError(f"{source} holds a single model, not several encoders; drop --encoder")
        raise InputError(
            f"{source} holds no {encoder} encoder (it holds "
            f"{', '.join(r for r in ROLES if r in seen)}); choose one of those with --encoder"
        )
    return Unwrapped(tensors, tuple(path), tuple(choices))


def _strip(keys: list[str], prefix: str) -> list[str]:
    return [k[len(prefix) :] if k.startswith(prefix) else k for k in keys]


class TwoCopiesError(Exception):
    """Two key prefixes each give the model's tensors: two networks under unknown names."""

    def __init__(self, prefixes: tuple[str, str]):
        super().__init__(prefixes)
        self.prefixes = prefixes


def strip_prefixes(keys: list[str], target: set[str]) -> tuple[list[str], tuple[str, ...]]:
    """Strip prefixes while that makes more keys match ``target``; return keys and prefixes.

    Raises ``TwoCopiesError`` when another prefix than the best gives at least half as many
    of the same model tensors from other keys: two copies of the network, one of them
    taken by chance."""
    stripped: list[str] = []
    while True:
        matches = len(target.intersection(keys))
        leading = [
            ".".join(k.split(".")[:depth]) + "."
            for k in keys
            if k not in target
            for depth in range(1, min(k.count("."), MAX_PREFIX_DEPTH) + 1)
        ]
        candidates = list(dict.fromkeys([*STRIP_PREFIXES, *leading]))
        scores: dict[str, int] = {}
        for prefix in candidates:
            renamed = _strip(keys, prefix)
            if len(set(renamed)) < len(renamed):
                continue
            count = len(target.intersection(renamed))
            if count > matches:
                scores[prefix] = count
        if not scores:
            return keys, tuple(stripped)
        best = max(scores, key=lambda p: scores[p])  # the first of the best, in candidate order
        sources = {k[len(best) :]: k for k in keys if k.startswith(best)}
        for prefix in scores:
            clash = sum(
                1
                for k in keys
                if k.startswith(prefix)
                and k[len(prefix) :] in target
                and sources.get(k[len(prefix) :], k) != k
            )
            if prefix != best and 2 * clash >= scores[best] - matches:
                done = "".join(stripped)
                raise TwoCopiesError((done + best, done + prefix))
        keys = _strip(keys, best)
        stripped.append(best)


def _changes(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """What a checkpoint filter did: tensors it renamed or dropped, new ones, resized ones."""
    gone = [k for k in before if k not in after]
    new = [k for k in after if k not in before]
    resized = [
        f"{k} {tuple(before[k].shape)} -> {tuple(v.shape)}"
        for k, v in after.items()
        if k in before and torch.is_tensor(v) and v.shape != before[k].shape
    ]
    out = []
    if gone or new:
        out.append(f"replaced {len(gone)} tensors ({_abbreviate(tuple(gone), 3)}) by {len(new)}")
    if resized:
        out.append(f"resized {_abbreviate(tuple(resized), 3)}")
    return tuple(out)


def _is_head(key: str, head_prefixes: tuple[str, ...]) -> bool:
    return key.split(".", 1)[0] in head_prefixes


def fit_state_dict(
    state: dict[str, torch.Tensor],
    model: torch.nn.Module,
    *,
    source: str,
    container: tuple[str, ...] = (),
    head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
    allow_missing: bool = False,
    filter_fn: Callable | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename, convert, filter and cast ``state`` for ``model``; see the module docstring."""
    target = model.state_dict()
    try:
        keys, stripped = strip_prefixes(list(state), set(target))
    except TwoCopiesError as error:
        choices = " or ".join(f"--key {_as_key(list(container), p)}" for p in error.prefixes)
        raise InputError(
            f"{source} holds two copies of this model's weights, under "
            f"{' and '.join(error.prefixes)}, with names that do not tell which one to load; "
            f"choose one with {choices}"
        ) from None
    renamed = dict(zip(keys, state.values(), strict=True))
    filtered_by, filter_changes = "", ()
    if filter_fn is not None:
        filtered_by = f"timm's {filter_fn.__module__}.{filter_fn.__name__}"
        try:
            converted = filter_fn(dict(renamed), model)
        except Exception as error:  # a layout it does not know: fit the keys as they are
            filter_changes = (f"not applicable ({type(error).__name__}: {error})",)
        else:
            filter_changes = _changes(renamed, converted)
            renamed = converted
    fitted: dict[str, torch.Tensor] = {}
    dropped, unexpected, wrong_shape = [], [], []
    cast: Counter[str] = Counter()
    for key, tensor in renamed.items():
        want = target.get(key)
        if want is None or want.shape != tensor.shape:
            if _is_head(key, head_prefixes):
                dropped.append(key)
            elif want is None:
                unexpected.append(key)
            else:
                wrong_shape.append(f"{key} {tuple(tensor.shape)} vs model {tuple(want.shape)}")
            continue
        if tensor.is_floating_point() and tensor.dtype != want.dtype:
            cast[str(tensor.dtype).removeprefix("torch.")] += 1
            tensor = tensor.to(want.dtype)
        fitted[key] = tensor
    absent = [k for k in target if k not in fitted and not k.endswith(IGNORED_MISSING)]
    modules = {name for name, _ in model.named_modules()}
    report = LoadReport(
        source=source,
        container=container,
        stripped=stripped,
        filtered_by=filtered_by,
        filter_changes=filter_changes,
        loaded=len(fitted),
        cast=dict(cast),
        dropped_head=tuple(dropped),
        head_left_at_init=tuple(k for k in absent if _is_head(k, head_prefixes)),
        missing=tuple(k for k in absent if not _is_head(k, head_prefixes)),
        unexpected=tuple(unexpected),
        extra_layers=tuple(k for k in unexpected if _inside_a_lacked_layer(k, modules)),
        wrong_shape=tuple(wrong_shape),
    )
    if report.wrong_shape or ((report.missing or report.extra_layers) and not allow_missing):
        raise CheckpointMismatchError(report)
    return fitted, report


def _inside_a_lacked_layer(key: str, modules: set[str]) -> bool:
    """Whether tensor ``key`` belongs to a module the model lacks whose parent, or an
    ancestor below the root, the model has: ``layer1.2.conv1.weight`` for a model with
    ``layer1`` but no ``layer1.2``. A tensor of a module the model has (an extra buffer)
    or of one with no ancestor in the model (``decoder_blocks.0...``) is not."""
    path = key.rpartition(".")[0]
    if path in modules:
        return False
    while path:
        path = path.rpartition(".")[0]
        if path in modules:
            return bool(path)
    return False


def load_checkpoint_into(
    model: torch.nn.Module,
    path: Path,
    *,
    head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
    allow_missing: bool = False,
    encoder: str | None = None,
    key: str | None = None,
    filter_fn: Callable | None = None,
) -> LoadReport:
    """Read ``path`` safely, fit it to ``model`` and load it; return the load report.

    ``encoder`` (a name in ``ENCODERS``) or ``key`` (a prefix of dict keys and tensor
    names, e.g. ``student`` or ``module.momentum_encoder``) choose among several encoders.
    """
    found = unwrap(read_checkpoint(path), str(path), encoder=encoder, key=key)
    fitted, report = fit_state_dict(
        found.state,
        model,
        source=str(path),
        container=found.container,
        head_prefixes=head_prefixes,
        allow_missing=allow_missing,
        filter_fn=filter_fn,
    )
    choices = found.encoders
    report = replace(
        report,
        encoder=f"--key {key}" if key is not None else "/".join(c.role for c in choices),
        other_encoders=tuple(dict.fromkeys(r for c in choices for r in c.others)),
        encoder_chosen=encoder is not None or key is not None,
        encoders=choices,
    )
    model.load_state_dict(fitted, strict=False)
    return report
