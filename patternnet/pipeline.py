"""The front door: source text -> parse -> resolve -> check, written once.

``check`` (a network, or a family member by member), ``expand`` (every member, failing
ones too) and ``one_network`` (the one network that ``compile``, ``train`` and ``draw``
need: a family is refused with ``FamilyError``) are the only ways from a path or text
to a ``CheckedNet``; ``patternnet.check``, ``patternnet.compile``, ``patternnet.train``
and every command go through them.  Each returns plain frozen data or raises a
``PatternNetError`` carrying every diagnostic.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from . import limits
from .ast import Program
from .checker import CheckedNet, attempt
from .diagnostics import Diagnostic, PatternNetError, ResolveError, ShapeError, SourceError
from .parser import parse_source
from .record import field, record
from .ast import Span
from .resolver import (Family, FreeRange, Network, RBlock, RBranches, ROptional, RRepeat,
                       RSeq, resolve)
from .source import Source, read

#: what ``load`` takes: a path, source text, or an already parsed ``Program``
SourceLike = Union[str, "os.PathLike[str]", Program]
#: what ``parse_shape`` takes: ``"64x64x3"``, ``"784"``, ``(64, 64, 3)`` or None
ShapeLike = Union[str, Sequence[int], None]


def load(source_or_path: SourceLike) -> Program:
    """A parsed program from a path, source text or an already parsed ``Program``."""
    if isinstance(source_or_path, Program):
        return source_or_path
    if isinstance(source_or_path, os.PathLike):
        return parse_source(read(source_or_path))
    text = str(source_or_path)
    if _looks_like_path(text):
        return parse_source(read(text))
    return parse_source(Source("<string>", text))


def _looks_like_path(s: str) -> bool:
    if "\n" in s or "->" in s or "(" in s:
        return False
    return s.endswith(".pn") or os.path.sep in s or os.path.isfile(s)


def parse_shape(value: ShapeLike) -> Optional[tuple[int, ...]]:
    """``"64x64x3"``, ``"784"``, ``(64, 64, 3)`` or None -> a shape tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            dims = tuple(int(p) for p in value.lower().split("x"))
        except ValueError:
            dims = ()
    else:
        dims = tuple(value)
    if len(dims) not in (1, 3) or not all(isinstance(d, int) and d >= 1 for d in dims):
        raise SourceError([Diagnostic("E004", f"input shape {value!r} is not HxWxC or D",
                                      help="write it like 224x224x3 (an image) or 784 (a vector)")])
    return dims


@record
class Member:
    """One member of a family: a binding of its ranges and an on/off for each `?`."""
    bindings: tuple[tuple[str, int], ...]
    choices: tuple[bool, ...]
    net: Optional[CheckedNet] = None
    error: Optional[PatternNetError] = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.net is not None

    @property
    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.bindings]
        if self.choices:
            parts.append("?=" + "".join("1" if c else "0" for c in self.choices))
        return " ".join(parts) or "(single)"


@record
class CheckedFamily:
    name: Optional[str]
    free: tuple                     # resolve.FreeRange
    members: tuple[Member, ...]

    @property
    def failures(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if not m.ok)

    @property
    def label(self) -> str:
        return self.name or "(default network)"


def check(source_or_path: SourceLike, *, net: Optional[str] = None,
          define: Optional[dict] = None, input_shape: ShapeLike = None,
          classes: Optional[int] = None, strict: bool = False,
          ) -> Union[CheckedNet, CheckedFamily]:
    """Check a network: every layer's shape, parameters and MACs.

    A network with free ranges (a family) is checked member by member, each binding
    and each on/off of every ``?``; any failing member raises ``ShapeError`` naming
    its binding.  Returns a ``CheckedNet`` (``.layers``, ``.totals``, ``.params``) or
    a ``CheckedFamily``.
    """
    program = load(source_or_path)
    resolved = resolve(program, net=net, define=define)
    return check_resolved(resolved, program, parse_shape(input_shape), classes, strict)


def check_resolved(resolved: Union[Network, Family], program: Program,
                   shape: Optional[tuple[int, ...]] = None, classes: Optional[int] = None,
                   strict: bool = False) -> Union[CheckedNet, CheckedFamily]:
    """``check`` after resolve: one network, or every member of a family."""
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int)
                                or classes < 1):
        raise SourceError([Diagnostic("E004", f"classes={classes!r}: expected a positive integer",
                                      help="the number of classes a bare final FC outputs, "
                                      "e.g. classes=10 (--classes 10)")])
    if isinstance(resolved, Network):
        result = attempt(resolved, shape, classes, strict).result
        if isinstance(result, PatternNetError):
            raise result
        return result
    fam = _family(resolved, program, shape, classes, strict)
    if fam.failures:
        raise members_failed(fam, program)
    return fam


def expand(source_or_path: SourceLike, *, net: Optional[str] = None,
           define: Optional[dict] = None, input_shape: ShapeLike = None,
           classes: Optional[int] = None, strict: bool = False) -> CheckedFamily:
    """Every member of a family (or of one network's `?` choices), failing ones included."""
    program = load(source_or_path)
    shape = parse_shape(input_shape)
    resolved = resolve(program, net=net, define=define)
    return _family(resolved, program, shape, classes, strict)


def _family(resolved, program: Program, shape, classes, strict) -> CheckedFamily:
    if isinstance(resolved, Network):
        nets = [(dict(resolved.bindings), resolved)]
        free, name = (), resolved.name
    else:
        nets = list(resolved.members())
        free, name = resolved.free, resolved.name
    budget = _Budget(program)
    budget.before_any(resolved, nets)
    members: list[Member] = []
    for binding, net in nets:
        bind = tuple(binding.items())
        if isinstance(net, PatternNetError):
            members.append(Member(bind, (), None, net))
        else:
            _explore(net, shape, classes, strict, bind, members, budget)
    return CheckedFamily(name, free, tuple(members))


def _explore(net: Network, shape, classes, strict, bind, out: list, budget: "_Budget") -> None:
    """Depth-first over the on/off of each `?` met; a choice to keep a `?` that does not
    fit is the same member as leaving it out, so it is not listed twice."""
    stack: list[list[bool]] = [[]]
    while stack:
        choices = stack.pop()
        budget.spend(net)
        a = attempt(net, shape, classes, strict, choices)
        if a.dropped_on:
            continue
        result = a.result
        if isinstance(result, PatternNetError):
            out.append(Member(bind, a.made, None, result))
            continue
        if a.choice_at > len(choices):
            stack.append(choices + [False])
            stack.append(choices + [True])
            continue
        out.append(Member(bind, tuple(choices), result, None))
        if len(out) > limits.MAX_FAMILY_MEMBERS:
            raise budget.refuse("E216", f"each on/off of every `?` makes more than "
                                f"{limits.MAX_FAMILY_MEMBERS:,} members, over the limit "
                                "(MAX_FAMILY_MEMBERS)", net)


class _Budget:
    """The layers a family's check may go through, all members and `?` choices
    together (``MAX_FAMILY_LAYERS``): each member is bounded by ``MAX_LAYERS`` and
    their number by ``MAX_FAMILY_MEMBERS``, but 4,096 members of 8,000 layers would
    take minutes.  Refused before checking anything when one check per binding is
    already over; else counted per check, since every `?` doubles the checks."""

    def __init__(self, program: Program) -> None:
        self.left = limits.MAX_FAMILY_LAYERS
        self.program = program

    def before_any(self, resolved, nets: list) -> None:
        total = sum(n.layer_count for _, n in nets if isinstance(n, Network))
        if total <= self.left or not isinstance(resolved, Family):
            return
        r = max(resolved.free, key=lambda f: len(f.values))  # as E216 does: the widest
        raise ResolveError([Diagnostic(
            "E217", f"the family's {len(nets):,} members have {total:,} layers in all, over "
            f"the limit of {limits.MAX_FAMILY_LAYERS:,} (MAX_FAMILY_LAYERS)", r.span,
            help=f"narrow the ranges (`{r.name}` alone has {len(r.values):,} values), "
            "or fix some with -D name=value")], {self.program.file: self.program.text})

    def spend(self, net: Network) -> None:
        self.left -= net.layer_count
        if self.left < 0:
            raise self.refuse("E217", "checking each on/off of every `?` goes through more "
                              f"than {limits.MAX_FAMILY_LAYERS:,} layers, over the limit "
                              "(MAX_FAMILY_LAYERS)", net)

    def refuse(self, code: str, message: str, net: Network) -> ResolveError:
        return ResolveError([Diagnostic(
            code, message, _first_optional(net.body),
            help="write fewer `?` (each one doubles the members), or fix ranges with "
            "-D name=value")], {self.program.file: self.program.text})


def _first_optional(node) -> Optional[Span]:
    """The span of the first `?` in a resolved body, depth first."""
    if isinstance(node, ROptional):
        return node.span
    for child in _children(node):
        span = _first_optional(child)
        if span is not None:
            return span
    return None


def _children(node) -> tuple:
    if isinstance(node, RSeq):
        return node.items
    if isinstance(node, RBranches):
        return node.items
    if isinstance(node, (RRepeat, RBlock)):
        return (node.body,)
    return ()


def members_failed(fam: CheckedFamily, program: Program) -> ShapeError:
    """Every failing member's errors, each message prefixed with the member's binding."""
    diags = []
    for m in fam.failures:
        assert m.error is not None  # a failure is a member with an error
        for d in m.error.diagnostics:
            if d.severity != "error":
                continue
            diags.append(Diagnostic(d.code, f"member {m.label}: {d.message}", d.span, d.help,
                                    d.notes, d.severity, d.label, d.trace))
    return ShapeError(diags[: limits.MAX_ERRORS], {program.file: program.text})


# --- one network: compile, train, draw ------------------------------------------------


class FamilyError(ResolveError):
    """One network was needed and the selection is a family (E210): ``family`` says
    which ranges are free; ``one_line()`` is the short form a command prints."""

    def __init__(self, family: Family, program: Program, needs: str = "compile") -> None:
        self.family = family
        super().__init__([_refusal(family, needs)], {program.file: program.text})

    def one_line(self, file: str, verb: str) -> str:
        fam = self.family
        which = f"`{fam.name}`" if fam.name else "the default network"
        ranges = ", ".join(f"{r.name} in {r.lo}..{r.hi}" for r in fam.free)
        pick = " ".join(f"-D {r.name}={r.hi}" for r in fam.free)
        return f"{file}: {which} is a family over {ranges}; {verb} one member, e.g. {pick}"


def _refusal(fam: Family, needs: str) -> Diagnostic:
    free: tuple[FreeRange, ...] = fam.free
    names = [f"`{r.name}` ({r.lo}..{r.hi})" for r in free]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is a free range" if len(free) == 1 else "are free ranges"
    example = ", ".join(f"{r.name!r}: {r.lo}" for r in free)
    flags = " ".join(f"-D {r.name}={r.lo}" for r in free)
    return Diagnostic(
        "E210", f"{fam.name or 'the default network'} is a family of {fam.size:,} networks "
        f"({listed} {verb}); {needs} needs one network", free[0].span if free else None,
        help=f"fix the ranges: define={{{example}}} (on the command line {flags}); "
        "patternnet.expand lists the members")


def one_network(source_or_path: SourceLike, *, net: Optional[str] = None,
                define: Optional[dict] = None, input_shape: ShapeLike = None,
                classes: Optional[int] = None, strict: bool = False,
                needs: str = "compile") -> CheckedNet:
    """The one network ``compile``, ``train`` and ``draw`` use, checked; a family (free
    ranges left) raises ``FamilyError`` (E210) naming them and the ``define`` to give."""
    program = load(source_or_path)
    resolved = resolve(program, net=net, define=define)
    if isinstance(resolved, Family):
        raise FamilyError(resolved, program, needs)
    result = check_resolved(resolved, program, parse_shape(input_shape), classes, strict)
    assert isinstance(result, CheckedNet)
    return result
