"""The machinery that lets each setting be declared once.

A setting is a dataclass field made by ``Area.setting``: its default, a
one-line doc, its checks, and (only where the annotation does not say it) its
``Kind``. Its variable is ``AUTHSVC_`` and the field's name in upper case. From
these declarations come loading (``load``), validation (``validate``), the
warning about unknown variables, and the reference page (``reference.py``).
Nothing here knows a particular setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .values import BY_TYPE, Kind, Secret, read_file

log = logging.getLogger("authsvc")
PREFIX = "AUTHSVC_"


@dataclasses.dataclass(frozen=True)
class Rule:
    """A check of one value on its own (skipped while the value is unset)."""

    holds: Callable[[Any], bool]
    says: str


@dataclasses.dataclass(frozen=True)
class Relation:
    """A check of how a value fits the others; it sees the whole settings object."""

    holds: Callable[[Any], bool]
    says: str


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a field's metadata holds."""

    area: Area
    doc: str
    checks: tuple[Rule | Relation, ...]
    kind: Kind | None
    shown: str | None
    derive: Callable[[Mapping[str, Any]], Any] | None
    file_variant: bool


@dataclasses.dataclass(frozen=True)
class Area:
    """A group of settings: one section of the reference page."""

    title: str
    intro: str

    def setting(self, default: Any = None, doc: str = "", *checks: Rule | Relation,
                kind: Kind | None = None, shown: str | None = None,
                default_factory: Callable[[], Any] | None = None,
                derive: Callable[[Mapping[str, Any]], Any] | None = None,
                file_variant: bool = False) -> Any:
        """A field of ``Settings``.

        ``shown`` is the default as the reference states it, where the value alone
        would mislead; ``derive`` computes the value ``from_env`` uses when the
        variable is unset (from the other values); ``file_variant`` also reads the
        value from the file named by the ``*_FILE`` variable.
        """
        spec = Spec(self, doc, checks, kind, shown, derive, file_variant)
        if default_factory is not None:
            return dataclasses.field(default_factory=default_factory, metadata={"spec": spec})
        return dataclasses.field(default=default, metadata={"spec": spec})


@dataclasses.dataclass(frozen=True)
class Declared:
    """One setting, resolved: field name, variable, kind, whether it is secret."""

    name: str
    variable: str
    kind: Kind
    secret: bool
    spec: Spec
    field: dataclasses.Field[Any]

    def default(self) -> Any:
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return self.field.default


def declared(cls: type) -> tuple[Declared, ...]:
    """Every setting of ``cls`` in declaration order."""
    if cls not in _DECLARED:
        _DECLARED[cls] = _resolve(cls)
    return _DECLARED[cls]


_DECLARED: dict[type, tuple[Declared, ...]] = {}


def _resolve(cls: type) -> tuple[Declared, ...]:
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        spec: Spec = field.metadata["spec"]
        secret, plain = _unwrap(hints[field.name])
        kind = spec.kind or BY_TYPE.get(plain)
        if kind is None:
            raise TypeError(f"{cls.__name__}.{field.name} needs kind=: its type is {plain}")
        found.append(Declared(field.name, PREFIX + field.name.upper(), kind, secret, spec,
                              field))
    return tuple(found)


def _unwrap(hint: Any) -> tuple[bool, Any]:
    """(secret?, the plain type) of ``Secret[X] | None`` and the like."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is Secret:
        return True, typing.get_args(hint)[0]
    return False, typing.get_origin(hint) or hint


def validate(settings: Any) -> None:
    """Each value on its own, in declaration order, then how they fit together."""
    settings_declared = declared(type(settings))
    for item in settings_declared:
        value = getattr(settings, item.name)
        if value is None:
            continue
        plain = value.reveal() if isinstance(value, Secret) else value
        for rule in item.spec.checks:
            if isinstance(rule, Rule) and not rule.holds(plain):
                raise ConfigError(f"{item.variable} {rule.says}")
    for item in settings_declared:
        for relation in item.spec.checks:
            if isinstance(relation, Relation) and not relation.holds(settings):
                raise ConfigError(f"{item.variable} {relation.says}")


def load(cls: type, env: Mapping[str, str], overrides: Mapping[str, object],
         read_elsewhere: frozenset[str]) -> dict[str, Any]:
    """The keyword arguments of ``cls`` from ``env``; ``overrides`` win. Unset
    variables are left out, so the field's default applies, or its ``derive``."""
    values: dict[str, Any] = {}
    for item in declared(cls):
        found = _read(item, env)
        if found is not _UNSET:
            values[item.name] = Secret(found) if item.secret else found
    values.update({name: value for name, value in overrides.items() if value is not None})
    for item in declared(cls):
        if item.name not in values and item.spec.derive is not None:
            values[item.name] = item.spec.derive(_Effective(cls, values))
    _warn_unknown(env, frozenset(variables(cls)) | read_elsewhere)
    return values


_UNSET = object()


def _read(item: Declared, env: Mapping[str, str]) -> Any:
    raw = env.get(item.variable)
    if raw:  # an empty variable is an unset one
        try:
            return item.kind.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{item.variable} is invalid: {exc}") from None
    path = env.get(item.variable + "_FILE") if item.spec.file_variant else None
    if path:
        return read_file(item.variable + "_FILE", Path(path), item.kind)
    return _UNSET


class _Effective(Mapping[str, Any]):
    """The values so far, with the defaults of those not given: what ``derive`` sees."""

    def __init__(self, cls: type, values: Mapping[str, Any]) -> None:
        self._by_name = {item.name: item for item in declared(cls)}
        self._values = values

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return self._by_name[name].default()

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def variables(cls: type) -> Iterator[str]:
    """Every variable ``cls`` reads, ``*_FILE`` variants included."""
    for item in declared(cls):
        yield item.variable
        if item.spec.file_variant:
            yield item.variable + "_FILE"


def _warn_unknown(env: Mapping[str, str], known: frozenset[str]) -> None:
    """Each AUTHSVC_* variable set but not known, with the closest known name."""
    choices = sorted(known)
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known:
            closest = difflib.get_close_matches(name, choices, 1, 0.75)
            hint = f"; did you mean {closest[0]}?" if closest else ""
            log.warning("%s is not a setting of authsvc and is ignored%s", name, hint)


# Checks used by many settings, worded as start-up states them after the variable.

def at_least(low: int) -> Rule:
    return Rule(lambda value: value >= low, f"must be at least {low}")


def between(low: float, high: float, unit: str = "") -> Rule:
    return Rule(lambda value: low <= value <= high, f"must be between {low} and {high}{unit}")


def one_of(choices: tuple[str, ...]) -> Rule:
    return Rule(lambda value: value in choices, f"must be one of {', '.join(choices)}")


ZERO_OR_MORE = Rule(lambda value: value >= 0, "must be 0 or more")
POSITIVE = Rule(lambda value: value > 0, "must be positive")
NOT_EMPTY = Rule(bool, "must not be empty")
