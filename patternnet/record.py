"""``record``: frozen, slotted data classes that are cheap to *define*.

``@dataclass(frozen=True, slots=True)`` costs about 0.6 ms per class at import
(several ``exec`` calls, signature and ``typing`` introspection, and a second class
object for the slots).  PatternNet defines ~50 such classes, and ``patternnet check``
is a command people run in CI and pre-commit hooks: those 30 ms were a fifth of its cold
start (bench/bench_check.py).  ``record`` keeps the part of dataclasses we use and
builds each class with one small ``exec`` (its ``__init__``; equality, hashing and
``repr`` are shared functions over ``operator.attrgetter``):

* fields from the annotations, in order; defaults; ``field(default_factory=...)``;
* ``field(compare=False)`` leaves a field out of ``==`` and ``hash`` (spans), and
  ``field(repr=False)`` out of ``repr``;
* frozen by default (assignment raises ``AttributeError``); ``@record(frozen=False)``
  for the few mutable helpers;
* ``__slots__``, ``__match_args__`` and pickling.

Methods and properties defined in the class body are kept.  Inheritance between
records is not supported (none is used).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

_T = TypeVar("_T", bound=type)
_F = TypeVar("_F")

if TYPE_CHECKING:  # typeshed has it for every Python; at run time it is only a marker
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Callable[[_F], _F]:
        return lambda fn: fn

_MISSING = object()


class Field:
    __slots__ = ("default", "factory", "compare", "repr")

    def __init__(self, default: Any = _MISSING, factory: Callable[[], Any] | None = None,
                 compare: bool = True, repr: bool = True) -> None:
        self.default, self.factory, self.compare, self.repr = default, factory, compare, repr


def field(default: Any = _MISSING, *, default_factory: Callable | None = None,
          compare: bool = True, repr: bool = True) -> Any:
    return Field(default, default_factory, compare, repr)


def _frozen_setattr(self, name, value):
    raise AttributeError(f"{type(self).__name__} is frozen: cannot assign `{name}`")


def _frozen_delattr(self, name):
    raise AttributeError(f"{type(self).__name__} is frozen: cannot delete `{name}`")


def _key_getter(names: tuple) -> Callable:
    if not names:
        return lambda obj: ()
    get = attrgetter(*names)
    return get if len(names) > 1 else (lambda obj: (get(obj),))


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return self._cmp_key(self) == self._cmp_key(other)


def _hash(self):
    return hash(self._cmp_key(self))


def _repr(self):
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._repr_fields)
    return f"{type(self).__qualname__}({inner})"


def _getstate(self):
    return self._all_key(self)


def _setstate(self, state):
    for n, v in zip(self.__record_fields__, state):
        object.__setattr__(self, n, v)


@overload
def record(cls: _T, *, frozen: bool = True) -> _T: ...
@overload
def record(cls: None = None, *, frozen: bool = True) -> Callable[[_T], _T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: _T | None = None, *, frozen: bool = True) -> _T | Callable[[_T], _T]:
    """Turn a class with annotated fields into a record (see the module doc): to type
    checkers, a frozen dataclass (``dataclass_transform``)."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def _build(cls, frozen: bool):
    names = list(cls.__dict__.get("__annotations__", {}))
    specs = {}
    for n in names:
        v = cls.__dict__.get(n, _MISSING)
        specs[n] = v if isinstance(v, Field) else Field(v)
    ns: dict = {"_set": object.__setattr__, "_MISSING": _MISSING}
    params, body = [], []
    for n in names:
        f = specs[n]
        if f.factory is not None:
            ns[f"_f_{n}"] = f.factory
            params.append(f"{n}=_MISSING")
            body.append(f"  _set(self, {n!r}, _f_{n}() if {n} is _MISSING else {n})")
        else:
            if f.default is not _MISSING:
                ns[f"_d_{n}"] = f.default
                params.append(f"{n}=_d_{n}")
            else:
                params.append(n)
            body.append(f"  _set(self, {n!r}, {n})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["  pass"]), ns)
    attrs = {k: v for k, v in cls.__dict__.items()
             if k not in names and k not in ("__dict__", "__weakref__")}
    init = ns["__init__"]
    # as dataclasses do: the fields' annotations (as written) and ``-> None``, so that
    # inspect.signature and help() show the types, and the name says whose it is
    written = cls.__dict__.get("__annotations__", {})
    init.__annotations__ = {**{n: written[n] for n in names}, "return": "None"}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    attrs["__init__"] = init
    cmp = tuple(n for n in names if specs[n].compare)
    attrs["_cmp_key"] = staticmethod(_key_getter(cmp))
    attrs["_all_key"] = staticmethod(_key_getter(tuple(names)))
    attrs["_repr_fields"] = tuple(n for n in names if specs[n].repr)
    for meth, fn in (("__eq__", _eq), ("__repr__", _repr), ("__getstate__", _getstate),
                     ("__setstate__", _setstate)):
        attrs.setdefault(meth, fn)
    if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
        attrs["__hash__"] = _hash if frozen else None
    if frozen:
        attrs["__setattr__"] = _frozen_setattr
        attrs["__delattr__"] = _frozen_delattr
    attrs["__slots__"] = tuple(names)
    attrs["__match_args__"] = tuple(names)
    attrs["__record_fields__"] = tuple(names)
    return type(cls)(cls.__name__, cls.__bases__, attrs)
