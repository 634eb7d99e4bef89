"""Every public function of PatternNet is fully annotated (issue 12).

Public: a module-level function, or a method (static and class methods included) of a
module-level class, whose name does not start with ``_``, in a module whose dotted name
has no part starting with ``_``; and the ``__init__`` of a public class.  Fully
annotated: every parameter but a method's ``self``/``cls`` (``*args`` and ``**kwargs``
too) and the return.  A property counts as its getter: its return annotation.

Only what a module defines is checked (``obj.__module__``), not what it re-exports, and
only code written in that module's file: a function made at run time elsewhere (a
``record``'s ``__init__`` is built from the field annotations, so it is covered by
them) is skipped.  Importing every module imports jax only through the modules that
import it themselves; a module whose extra is not installed is left out.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from types import FunctionType, ModuleType
from typing import Iterator, Optional

import patternnet

#: the top-level modules of the [jax] and [train] extras (tests/test_light_install.py)
EXTRAS = frozenset(("jax", "jaxlib", "numpy", "optax", "flatbuffers", "sklearn",
                    "matplotlib", "rich", "scipy", "ml_dtypes"))

def public_modules() -> list[str]:
    names = ["patternnet"]
    for info in pkgutil.walk_packages(patternnet.__path__, "patternnet."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _import(name: str) -> Optional[ModuleType]:
    """The module, or None when it needs an extra that is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in EXTRAS:
            return None
        raise


def _same_file(fn: FunctionType, module: ModuleType) -> bool:
    file = getattr(module, "__file__", None)  # code built by exec says "<string>"
    return file is not None and os.path.abspath(fn.__code__.co_filename) == os.path.abspath(file)


def _methods(cls: type) -> Iterator[tuple[str, FunctionType, bool]]:
    """(qualified name, function, whether it is a method) for the public methods, the
    ``__init__`` and the property getters defined in ``cls`` (nested classes too)."""
    for name, attr in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            yield f"{cls.__qualname__}.{name}", attr.__func__, isinstance(attr, classmethod)
        elif isinstance(attr, property) and isinstance(attr.fget, FunctionType):
            yield f"{cls.__qualname__}.{name}", attr.fget, True
        elif isinstance(attr, FunctionType):
            yield f"{cls.__qualname__}.{name}", attr, True
        elif inspect.isclass(attr) and attr.__qualname__.startswith(cls.__qualname__ + "."):
            yield from _methods(attr)


def public_functions(module: ModuleType) -> Iterator[tuple[str, FunctionType, bool]]:
    """(qualified name, function, whether it is a method) for what ``module`` defines."""
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            found: Iterator[tuple[str, FunctionType, bool]] = _methods(obj)
        else:
            fn = inspect.unwrap(obj) if callable(obj) else obj  # @functools.wraps, custom_jvp
            found = iter([(name, fn, False)] if isinstance(fn, FunctionType) else [])
        for qualname, fn, is_method in found:
            if _same_file(fn, module):
                yield qualname, fn, is_method


def missing(fn: FunctionType, is_method: bool) -> list[str]:
    """The parameters of ``fn`` without an annotation, and "return" if it has none."""
    sig = inspect.signature(fn, follow_wrapped=False)
    params = list(sig.parameters.values())
    if is_method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    out = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        out.append("return")
    return out


def offenders(module: ModuleType) -> list[str]:
    """``module.qualname(param, ...)`` for each public function not fully annotated."""
    return [f"{module.__name__}.{qualname}({', '.join(gaps)})"
            for qualname, fn, is_method in public_functions(module)
            if (gaps := missing(fn, is_method))]


MODULES = public_modules()


def test_every_public_function_is_annotated():
    bad: list[str] = []
    for name in MODULES:
        module = _import(name)
        if module is not None:
            bad += offenders(module)
    assert not bad, f"{len(bad)} not fully annotated:\n  " + "\n  ".join(bad)


def test_the_walk_finds_the_package_and_the_checks_find_offenders():
    """The test above cannot pass by finding nothing: the walk sees the subpackages,
    and ``missing`` reports a parameter, ``*args``, ``**kwargs`` and the return."""
    assert {"patternnet.backend.model", "patternnet.cli.check", "patternnet.training.loop",
            "patternnet.pipeline", "patternnet.record"} <= set(MODULES)
    assert "patternnet.__main__" not in MODULES

    def bare(a, *args, b: int, **kw):
        return a

    assert missing(bare, is_method=False) == ["a", "args", "kw", "return"]
    pipeline = importlib.import_module("patternnet.pipeline")
    found = dict((q, f) for q, f, _ in public_functions(pipeline))
    assert "FamilyError.__init__" in found and "FamilyError.one_line" in found
    assert "Member.ok" in found          # a property, by its getter
    assert "parse_source" not in found   # re-exported from the parser, not defined here
