"""Resolve stage: ``ast.Program`` -> a ``Network`` (or a ``Family`` while ranges are free).

Resolve gives every name its meaning: constants are evaluated (``-D`` overrides
first), blocks are expanded where they are called with their arguments bound,
layer arguments are matched against the layer table and checked for kind, repeat
counts become integers, and one network is selected.  Defaults that depend on the
network's shapes (bare ``CONV`` filters, bare ``FC`` units) are left to the checker.

The output is plain frozen data.  Repeats stay repeats (the body is resolved once),
so ``[CONV]*1000000000`` costs nothing until the layer-count limit says no.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence, Union

from .record import field, record
from . import ast as A
from . import limits
from .args import as_layer, normalize_arg, show
from .diagnostics import Diagnostic, Fail, Frame, ResolveError, did_you_mean
from .layers import LAYERS, REQUIRED, LayerSpec

# --- the resolved network ------------------------------------------------------------


@record
class RLayer:
    """One layer with the arguments the user gave, by canonical name, evaluated."""
    kind: str                           # canonical name: MAXPOOL is POOL
    args: tuple[tuple[str, Any], ...]   # given arguments only; defaults come from the table
    span: A.Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)
    written: str = field(default="", compare=False)  # the name as written

    def given(self, name: str) -> bool:
        return any(k == name for k, _ in self.args)

    def get(self, name: str, default: Any = None) -> Any:
        for k, v in self.args:
            if k == name:
                return v
        return default

    @property
    def spec(self) -> LayerSpec:
        return LAYERS[self.kind]


@record
class RSeq:
    items: tuple["RNode", ...]
    span: A.Span = field(compare=False)


@record
class RRepeat:
    body: RSeq
    count: int
    span: A.Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)


@record
class ROptional:
    body: RSeq
    span: A.Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)


@record
class RBranches:
    op: str  # a merge's operator: "|" concat, "+" add, "*" gate (merges.py)
    items: tuple[RSeq, ...]
    span: A.Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)


@record
class RBlock:
    """The expansion of one block call; kept so layer paths can name it."""
    name: str
    body: RSeq
    span: A.Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)


RNode = Union[RLayer, RSeq, RRepeat, ROptional, RBranches, RBlock]


@record
class Network:
    """A resolved network: its body starts with the INPUT layer."""
    name: Optional[str]                      # None for the file's default network
    body: RSeq
    layer_count: int                         # layers after expanding repeats
    bindings: tuple[tuple[str, int], ...] = ()  # range values, for a family member
    file: str = field(default="<string>", compare=False)
    text: str = field(default="", compare=False, repr=False)

    @property
    def input(self) -> RLayer:
        """The INPUT layer, which may sit inside the block the network starts with."""
        first = self.body.items[0]
        while isinstance(first, RBlock):
            first = first.body.items[0]
        assert isinstance(first, RLayer), first  # resolve puts INPUT first (E214)
        return first

    @property
    def label(self) -> str:
        return self.name or "(default network)"


@record
class FreeRange:
    name: str
    lo: int
    hi: int
    span: A.Span = field(compare=False)

    @property
    def values(self) -> range:
        return range(self.lo, self.hi + 1)


def lazy_product(ranges: Sequence[range]) -> Iterator[tuple[int, ...]]:
    """``itertools.product(*ranges)``, same order, without materialising the ranges:
    ``product`` first copies each argument into a tuple, so one range of 10**10 values
    exhausts memory before the first combination is produced."""
    if any(len(r) == 0 for r in ranges):
        return
    index = [0] * len(ranges)
    while True:
        yield tuple(r[i] for r, i in zip(ranges, index))
        k = len(ranges) - 1
        while k >= 0:
            index[k] += 1
            if index[k] < len(ranges[k]):
                break
            index[k] = 0
            k -= 1
        if k < 0:
            return


@record
class Family:
    """A network whose shape depends on ranges that no ``define`` fixed.

    ``members()`` resolves each binding; the checker further splits members by the
    on/off choice of every ``?``.
    """
    name: Optional[str]
    free: tuple[FreeRange, ...]
    program: A.Program = field(compare=False, repr=False)
    define: tuple[tuple[str, Any], ...] = ()

    @property
    def size(self) -> int:
        n = 1
        for r in self.free:
            n *= len(r.values)
        return n

    def bindings(self) -> Iterator[dict]:
        names = [r.name for r in self.free]
        for values in lazy_product([r.values for r in self.free]):
            yield dict(zip(names, values))

    def bind(self, binding: dict) -> Network:
        net = resolve(self.program, net=self.name, define={**dict(self.define), **binding})
        assert isinstance(net, Network), binding  # every free range is bound
        return net

    def members(self) -> Iterator[tuple[dict, Union[Network, ResolveError]]]:
        if self.size > limits.MAX_FAMILY_MEMBERS:
            r = max(self.free, key=lambda f: len(f.values))  # point at the widest range
            raise ResolveError([Diagnostic(
                "E216", f"the family has {self.size:,} members, over the limit of "
                f"{limits.MAX_FAMILY_MEMBERS:,} (MAX_FAMILY_MEMBERS)", r.span,
                help=f"narrow the ranges (`{r.name}` alone has {len(r.values):,} values), "
                "or fix some with -D name=value")],
                {self.program.file: self.program.text})
        for b in self.bindings():
            try:
                yield b, self.bind(b)
            except ResolveError as e:
                yield b, e


# --- errors --------------------------------------------------------------------------


_SATURATED = 10**12  # sizes beyond this are all "far too many"


class _Free(Exception):
    """A free range was needed: the network is a family."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _fail(code, message, span=None, help=None, trace=(), notes=(), label=""):
    return Fail(Diagnostic(code, message, span, help=help, trace=tuple(trace),
                           notes=tuple(notes), label=label))


# --- values --------------------------------------------------------------------------

Value = Union[int, float, bool, str, tuple]


def _kind_of(v) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return f"`{v}`"
    return "a size" if isinstance(v, tuple) else "a value"


def _arith(op: str, a, b, span, trace):
    for v in (a, b):
        if isinstance(v, (bool, str, tuple)):
            raise _fail("E209", f"cannot use {_kind_of(v)} in arithmetic (`{op}`)", span,
                        trace=trace, help="arithmetic works on numbers")
    if op in ("//", "/", "%") and b == 0:
        raise _fail("E209", "division by zero", span, trace=trace, label="divides by 0")
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "//":
        return a // b
    if op == "%":
        return a % b
    return a / b


def _as_int(v, span, trace, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        hint = "use // for integer division" if isinstance(v, float) else None
        raise _fail("E209", f"{what} must be an integer, got {_kind_of(v)} `{show(v)}`", span,
                    trace=trace, help=hint)
    return v


# --- the resolver --------------------------------------------------------------------


_PROGRAMS: dict = {}  # id(program) -> (program, defs, arg plans, block sizes by define)


def _program_cache(program: A.Program, r: "_Resolver") -> tuple:
    """What resolving learns about a program once and for all: its definitions sorted by
    kind, each layer call's arguments matched to the table, and block sizes.  Checking
    every network of a file resolves it many times; redoing this each time made that
    quadratic."""
    hit = _PROGRAMS.get(id(program))
    if hit is not None and hit[0] is program:
        return hit
    entry: tuple[A.Program, _Defs, dict, dict] = (program, r._collect(), {}, {})
    if len(_PROGRAMS) >= 8:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    _PROGRAMS[id(program)] = entry
    return entry


@record(frozen=False)
class _Defs:
    """The file's top-level names, sorted by what they are."""
    consts: dict = field(default_factory=dict)     # name -> Assign (arithmetic)
    ranges: dict = field(default_factory=dict)     # name -> RangeDef
    blocks: dict = field(default_factory=dict)     # name -> BlockDef | Assign (layer expr)
    networks: dict = field(default_factory=dict)   # name -> Assign starting with INPUT
    default: Optional[A.Bare] = None
    spans: dict = field(default_factory=dict)      # name -> name span


class _Resolver:
    def __init__(self, program: A.Program, define: dict):
        self.program = program
        self.file = program.file
        self.define = define
        self.const_cache: dict = {}
        self.evaluating: list = []
        self.created = 0
        self.expanded = 0
        self.repeat_spans: list = []
        _, self.defs, self.plans, sizes = _program_cache(program, self)
        self.sizes = sizes.setdefault(tuple(sorted(define.items(), key=lambda kv: kv[0])), {})

    # definitions ------------------------------------------------------------------
    def _collect(self) -> _Defs:
        defs, diags = _Defs(), []
        for st in self.program.statements:
            if isinstance(st, A.Bare):
                if defs.default is not None:
                    diags.append(Diagnostic(
                        "E202", "a second default network", st.span,
                        notes=(f"the first is at {defs.default.span}",),
                        help="name one of them: `name = INPUT -> ...`; pick it with --net"))
                else:
                    defs.default = st
                continue
            if st.name in defs.spans:
                diags.append(Diagnostic(
                    "E202", f"`{st.name}` is defined twice", st.name_span, label="again here",
                    notes=(f"first defined at {defs.spans[st.name]}",),
                    help="rename one of them, or delete the one you do not want"))
                continue
            defs.spans[st.name] = st.name_span
            if isinstance(st, A.RangeDef):
                defs.ranges[st.name] = st
            elif isinstance(st, A.BlockDef):
                defs.blocks[st.name] = st
            else:
                defs.consts[st.name] = st  # provisional: layer expressions move below
        self.defs = defs
        for name, st in list(defs.consts.items()):
            if self._is_layer_assign(st, set()):
                del defs.consts[name]
                body = as_layer(st.value)
                st = A.Assign(st.name, body, st.span, st.name_span)
                if self._starts_with_input(body, set()):
                    defs.networks[name] = st
                else:
                    defs.blocks[name] = st
        if diags:
            raise ResolveError(diags, {self.file: self.program.text})
        return defs

    def _is_layer_assign(self, st: A.Assign, seen: set) -> bool:
        v = st.value
        if isinstance(v, A.LAYER_NODES):
            return True
        if not isinstance(v, (A.Name, A.BinOp, A.Paren)):
            return False
        seen = seen | {st.name}
        for name in _names_in(v):
            if name in self.defs.blocks:
                return True
            other = self.defs.consts.get(name)
            if other is not None and name not in seen and self._is_layer_assign(other, seen):
                return True
        return False

    def _starts_with_input(self, node, seen: set) -> bool:
        for _ in range(limits.MAX_EXPR_DEPTH):
            if isinstance(node, A.Chain):
                node = node.items[0]
            elif isinstance(node, (A.Group, A.Repeat, A.Optional)):
                node = node.body
            elif isinstance(node, A.Layer):
                return node.name == "INPUT"
            elif isinstance(node, A.Call):
                target = self.defs.blocks.get(node.name) or self.defs.networks.get(node.name)
                if target is None:
                    target = self.defs.consts.get(node.name)
                    if target is None or not self._is_layer_assign(target, set()):
                        return False
                if node.name in seen:
                    return False
                seen = seen | {node.name}
                node = target.body if isinstance(target, A.BlockDef) else as_layer(target.value)
            else:
                return False
        return False

    # network selection --------------------------------------------------------------
    def select(self, net: Optional[str]):
        d = self.defs
        names = sorted(d.networks)
        listing = ", ".join(f"`{n}`" for n in names)
        if net is not None:
            if net in d.networks:
                return net, d.networks[net].value
            if net in d.blocks or net in d.consts or net in d.ranges:
                raise _fail("E207", f"`{net}` is not a network (it does not start with INPUT)",
                            d.spans.get(net), help=f"the networks are: {listing}" if names
                            else "this file has no named networks")
            hint = did_you_mean(net, names)
            raise _fail("E207", f"no network named `{net}` in {self.file}",
                        help=(hint + " " if hint else "") +
                        (f"the networks are: {listing}" if names else
                         "this file has no named networks; leave out --net"))
        if d.default is not None:
            return None, d.default.expr
        if len(names) == 1:
            return names[0], d.networks[names[0]].value
        if not names:
            raise _fail("E207", f"{self.file} defines no network",
                        help="a network starts with INPUT: `INPUT(32x32x3) -> CONV -> FC`")
        raise _fail("E207", f"{self.file} defines {len(names)} networks and no default one: "
                    "say which", help=f"choose one with --net NAME (net= in Python): {listing}")

    # constants ----------------------------------------------------------------------
    def const(self, name: str, span, trace):
        if name in self.define:
            return self.define[name]
        if name in self.defs.ranges:
            raise _Free(name)
        if name in self.const_cache:
            return self.const_cache[name]
        st = self.defs.consts[name]
        if name in self.evaluating:
            cycle = " -> ".join(self.evaluating[self.evaluating.index(name):] + [name])
            raise _fail("E203", f"`{name}` is defined in terms of itself: {cycle}", st.name_span,
                        help="break the cycle: give one of them a value")
        self.evaluating.append(name)
        try:
            value = self.value(st.value, {}, ())
        finally:
            self.evaluating.pop()
        self.const_cache[name] = value
        return value

    def value(self, node, env: dict, trace) -> Value:
        if isinstance(node, (A.Int, A.Float, A.Bool, A.Word)):
            return node.value
        if isinstance(node, A.Size):
            return node.dims
        if isinstance(node, A.Name):
            return self.lookup_value(node.name, node.span, env, trace)
        if isinstance(node, A.Paren):
            return self.value(node.inner, env, trace)
        if isinstance(node, A.Neg):
            v = self.value(node.operand, env, trace)
            return _arith("-", 0, v, node.span, trace)
        if isinstance(node, A.BinOp):
            return _arith(node.op, self.value(node.left, env, trace),
                          self.value(node.right, env, trace), node.span, trace)
        if isinstance(node, A.Tuple):
            return tuple(self.value(i, env, trace) for i in node.items)
        raise _fail("E213", "a layer expression cannot be used as a value", node.span,
                    trace=trace)

    def lookup_value(self, name: str, span, env: dict, trace) -> Value:
        if name in env:
            return env[name]
        if name in self.defs.consts or name in self.defs.ranges or name in self.define:
            return self.const(name, span, trace)
        if name in self.defs.blocks or name in self.defs.networks:
            raise _fail("E213", f"`{name}` is a block, not a value", span, trace=trace,
                        help="arguments and counts are numbers; blocks go in chains")
        known = list(env) + list(self.defs.consts) + list(self.defs.ranges)
        raise _fail("E201", f"undefined name `{name}`", span, trace=trace, label="not defined",
                    help=did_you_mean(name, known) or "define it: `name = 3`, or pass it with "
                    "-D name=3")

    # layer expressions --------------------------------------------------------------
    def seq(self, node, env: dict, trace, mult: int) -> RSeq:
        items: list = []
        self.expr(node, env, trace, mult, items)
        return RSeq(tuple(items), node.span)

    def expr(self, node, env, trace, mult, out: list) -> None:
        if isinstance(node, A.Chain):
            for item in node.items:
                self.expr(item, env, trace, mult, out)
        elif isinstance(node, A.Group):
            self.expr(node.body, env, trace, mult, out)
        elif isinstance(node, A.Layer):
            out.append(self.layer(node, env, trace, mult))
        elif isinstance(node, A.Call):
            out.append(self.call(node, env, trace, mult))
        elif isinstance(node, A.Repeat):
            out.append(self.repeat(node, env, trace, mult))
        elif isinstance(node, A.Optional):
            out.append(ROptional(self.seq(node.body, env, trace, mult), node.span, trace))
        elif isinstance(node, A.Branches):
            items = tuple(self.seq(i, env, trace, mult) for i in node.items)
            out.append(RBranches(node.op, items, node.span, trace))
        else:
            raise _fail("E213", "expected a layer here", node.span, trace=trace)

    def repeat(self, node: A.Repeat, env, trace, mult) -> RRepeat:
        count = node.count
        if isinstance(count, A.Name) and count.name not in env and (
                count.name in self.defs.blocks or count.name in self.defs.networks):
            raise _fail("E213", f"`{count.name}` is a block, so it cannot count a repeat",
                        count.span, trace=trace, help=f"a repeat count is a number; to run "
                        f"the block after, chain it: `-> {count.name}`; to gate by it, call it "
                        f"inside parentheses: `(ID * {count.name}())`")
        n = _as_int(self.value(node.count, env, trace), node.count.span, trace, "a repeat count")
        if n < 0:
            raise _fail("E209", f"a repeat count cannot be negative (it is {n})", node.count.span,
                        trace=trace, help="use *0 to leave the group out")
        self.repeat_spans.append((node.span, n))
        try:
            body = self.seq(node.body, env, trace, mult * n)
        finally:
            self.repeat_spans.pop()
        return RRepeat(body, n, node.span, trace)

    def count_layer(self, span, trace, mult) -> None:
        self.created += 1
        self.expanded += mult
        if self.expanded > limits.MAX_LAYERS or self.created > limits.MAX_LAYERS:
            notes = [f"repeated {n:,} times at {s}" for s, n in self.repeat_spans if n > 1]
            where = max(self.repeat_spans, key=lambda p: p[1])[0] if notes else span
            raise _fail("E208", f"the network expands to more than {limits.MAX_LAYERS:,} layers "
                        "(limit MAX_LAYERS)", where, trace=trace, notes=notes[-3:],
                        help="use fewer or smaller repeats", label="too many copies")

    def layer(self, node: A.Layer, env, trace, mult) -> RLayer:
        spec = LAYERS[node.name]  # unknown names were rejected by the parser (E105)
        plan = self.plans.get(id(node))
        if plan is None or plan[0] is not node:
            plan = self.plans[id(node)] = (node, self.arg_plan(node, spec, trace))
        values = tuple((name, normalize_arg(self.value(a.value, env, trace), argspec, node.name,
                                          a.value.span, trace))
                       for name, a, argspec in plan[1])
        self.count_layer(node.span, trace, mult)
        return RLayer(spec.name, values, node.span, trace, node.name)

    def arg_plan(self, node: A.Layer, spec, trace) -> tuple:
        """Each argument of ``node`` matched to the layer table: (name, Arg, ArgSpec)."""
        args: dict = {}
        positional = [a for a in node.args or () if a.name is None]
        if len(positional) > len(spec.args):
            extra = positional[len(spec.args)]
            takes = ", ".join(a.name for a in spec.args) or "no arguments"
            raise _fail("E212", f"{node.name} takes {len(spec.args)} positional argument"
                        f"{'' if len(spec.args) == 1 else 's'} ({takes}), got {len(positional)}",
                        extra.span, trace=trace, label="extra argument",
                        help="remove it, or name the arguments: "
                        + ", ".join(f"{a.name}=..." for a in spec.args[:3]) if spec.args
                        else "remove the parentheses' contents")
        for a, argspec in zip(positional, spec.args):
            args[argspec.name] = (a, argspec)
        for a in node.args or ():
            if a.name is None:
                continue
            argspec = spec.arg(a.name)
            if argspec is None:
                hint = did_you_mean(a.name, spec.keywords())
                allowed = ", ".join(f"`{k}`" for k in spec.keywords()) or "none"
                raise _fail("E205", f"{node.name} has no argument `{a.name}`", a.name_span,
                            trace=trace, label="unknown",
                            help=hint or f"{node.name} takes: {allowed}")
            if argspec.name in args:
                raise _fail("E206", f"`{argspec.name}` of {node.name} is given twice", a.span,
                            trace=trace, help="keep one of them")
            args[argspec.name] = (a, argspec)
        missing = [a.name for a in spec.args if a.default is REQUIRED and a.name not in args]
        if missing:
            example = ", ".join(["64" if i == 0 else f"{m}=..." for i, m in enumerate(missing)])
            raise _fail("E218", f"{node.name} needs `{'`, `'.join(missing)}`", node.span,
                        trace=trace, label="missing " + ", ".join(missing),
                        help=f"give it: `{node.name}({example})`")
        return tuple((name, a, argspec) for name, (a, argspec) in args.items())

    def call(self, node: A.Call, env, trace, mult) -> RNode:
        name = node.name
        if name in env:
            raise _fail("E213", f"`{name}` is a parameter holding {_kind_of(env[name])}, "
                        "not a block", node.span, trace=trace,
                        help="blocks are called by their own name; parameters are values")
        target = self.defs.blocks.get(name) or self.defs.networks.get(name)
        if target is None:
            if name in self.defs.consts or name in self.defs.ranges:
                raise _fail("E213", f"`{name}` is a constant, not a block", node.span,
                            trace=trace, help="use it as a number: an argument or a repeat count")
            known = list(self.defs.blocks) + list(self.defs.networks)
            raise _fail("E201", f"undefined block `{name}`", node.name_span, trace=trace,
                        label="not defined", help=did_you_mean(name, known)
                        or f"define it: `{name}(c) = CONV(c) -> RELU`")
        if any(f.name == name for f in trace):
            cycle = " -> ".join([f.name for f in trace][[f.name for f in trace].index(name):]
                                + [name])
            raise _fail("E203", f"block `{name}` calls itself: {cycle}", node.span, trace=trace,
                        help="blocks are expanded where they are called, so they cannot recurse;"
                        " use a repeat `*n` instead")
        if len(trace) >= limits.MAX_CALL_DEPTH:
            raise _fail("E215", f"block calls nested more than {limits.MAX_CALL_DEPTH} deep "
                        "(limit MAX_CALL_DEPTH)", node.span, trace=trace)
        params = target.params if isinstance(target, A.BlockDef) else ()
        inner_env = self.bind_args(node, params, env, trace)
        frame = Frame(name, node.span)
        body_ast = target.body if isinstance(target, A.BlockDef) else target.value
        size = self.block_size(name, body_ast, inner_env, ())
        if (self.created + size > limits.MAX_LAYERS
                or self.expanded + size * mult > limits.MAX_LAYERS):
            many = (f"{size:,} layers" + (f", {mult:,} times" if mult > 1 else "")
                    if size * mult <= 10 * limits.MAX_LAYERS else "far more layers")
            raise _fail("E208", f"block `{name}` expands to {many}: more than "
                        f"{limits.MAX_LAYERS:,} in the network (limit MAX_LAYERS)", node.span,
                        trace=trace, label="too many layers", help="use fewer or smaller "
                        "repeats; blocks are expanded where they are called")
        inner_trace = trace + (frame,)
        body = self.seq(body_ast, inner_env, inner_trace, mult)
        return RBlock(name, body, node.span, inner_trace)

    def size(self, node, env: dict, stack: tuple) -> int:
        """Layers ``node`` expands to (repeats counted once per copy), without expanding it.

        Memoised per block and arguments, so blocks that double each other cost one
        visit each.  Anything it cannot evaluate counts as 1: the expansion that follows
        reports the real error.
        """
        if isinstance(node, A.Layer):
            return 1
        if isinstance(node, (A.Chain, A.Branches)):
            return min(sum(self.size(i, env, stack) for i in node.items), _SATURATED)
        if isinstance(node, (A.Group, A.Optional)):
            return self.size(node.body, env, stack)
        if isinstance(node, A.Repeat):
            try:
                n = self.value(node.count, env, ())
            except (Fail, _Free):
                n = 1
            n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 1
            return min(n * self.size(node.body, env, stack), _SATURATED) if n else 0
        if isinstance(node, A.Call):
            target = self.defs.blocks.get(node.name) or self.defs.networks.get(node.name)
            if target is None or node.name in stack or node.name in env:
                return 1
            params = target.params if isinstance(target, A.BlockDef) else ()
            try:
                inner = self.bind_args(node, params, env, ())
            except (Fail, _Free):
                return 1
            body = target.body if isinstance(target, A.BlockDef) else target.value
            return self.block_size(node.name, body, inner, stack)
        return 1

    def block_size(self, name: str, body, env: dict, stack: tuple) -> int:
        """``size`` of a block's body for these arguments, memoised per program."""
        key = (name, tuple(sorted(env.items())))
        size = self.sizes.get(key)
        if size is None:
            size = self.sizes[key] = self.size(body, env, stack + (name,))
        return size

    def bind_args(self, node: A.Call, params, env, trace) -> dict:
        args = node.args or ()
        positional = [a for a in args if a.name is None]
        if len(positional) > len(params):
            raise _fail("E204", f"block `{node.name}` takes {len(params)} argument"
                        f"{'' if len(params) == 1 else 's'}, got {len(positional)}",
                        positional[len(params)].span, trace=trace, label="extra argument",
                        help=f"its parameters are: {', '.join(p.name for p in params) or 'none'}")
        given: dict = {}
        for a, p in zip(positional, params):
            given[p.name] = a
        names = [p.name for p in params]
        for a in args:
            if a.name is None:
                continue
            if a.name not in names:
                raise _fail("E204", f"block `{node.name}` has no parameter `{a.name}`",
                            a.name_span, trace=trace, label="unknown",
                            help=did_you_mean(a.name, names) or
                            f"its parameters are: {', '.join(names) or 'none'}")
            if a.name in given:
                raise _fail("E204", f"parameter `{a.name}` of `{node.name}` is given twice",
                            a.span, trace=trace, help="keep one of them")
            given[a.name] = a
        bound: dict = {}
        for p in params:
            if p.name in given:
                bound[p.name] = self.value(given[p.name].value, env, trace)
            elif p.default is not None:
                bound[p.name] = self.value(p.default, bound, trace)
            else:
                raise _fail("E204", f"block `{node.name}` needs argument `{p.name}`", node.span,
                            trace=trace, label=f"missing `{p.name}`",
                            help=f"pass it: `{node.name}({', '.join(names)})`")
        return bound

    # whole networks -----------------------------------------------------------------
    def network(self, name: Optional[str], expr) -> tuple[RSeq, int]:
        body = self.seq(expr, {}, (), 1)
        _check_input(body, name)
        return body, self.expanded


def _names_in(node) -> set:
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if isinstance(n, A.Name):
            out.add(n.name)
        stack.extend(A.children(n))
    return out


def _check_input(body: RSeq, name: Optional[str]) -> None:
    """INPUT must start the network, and appear nowhere else."""
    first = body.items[0] if body.items else None
    while isinstance(first, RBlock):
        first = first.body.items[0] if first.body.items else None
    if not isinstance(first, RLayer) or first.kind != "INPUT":
        where = first.span if first is not None else body.span
        raise _fail("E214", f"the network {'`' + name + '` ' if name else ''}does not start "
                    "with INPUT", where, help="start it with `INPUT -> ...` (a bare INPUT takes "
                    "--input, 32x32x3 by default)")
    stack = list(body.items[1:])
    inner = first
    block = body.items[0]
    while isinstance(block, RBlock):
        stack.extend(block.body.items[1:])
        block = block.body.items[0]
    while stack:
        n = stack.pop()
        if isinstance(n, RLayer):
            if n.kind == "INPUT" and n is not inner:
                raise _fail("E214", "INPUT can only start a network", n.span, trace=n.trace,
                            help="remove this INPUT; a network has exactly one, at its start")
        elif isinstance(n, (RSeq,)):
            stack.extend(n.items)
        elif isinstance(n, (RRepeat, ROptional, RBlock)):
            stack.append(n.body)
        elif isinstance(n, RBranches):
            stack.extend(n.items)


def parse_define(define: Optional[dict]) -> dict:
    """Normalise ``define``: values may be Python values or source text (from ``-D``)."""
    out = {}
    for k, v in (define or {}).items():
        if isinstance(v, str) and v not in ("same", "valid"):
            out[k] = _parse_define_text(k, v)
        else:
            out[k] = v
    return out


def _parse_define_text(name: str, text: str):
    from .parser import parse
    from .diagnostics import PatternNetError

    try:
        prog = parse(f"{name} = {text}\n", "<-D>")
        # one statement, unless the text held a line break of its own
        st = prog.statements[0] if len(prog.statements) == 1 else None
        if isinstance(st, A.Assign):
            return _Resolver(A.Program((), (), "<-D>"), {}).value(st.value, {}, ())
    except (PatternNetError, Fail, _Free):
        pass
    raise ResolveError([Diagnostic(
        "E210", f"-D {name}={text}: the value is not a number, size or boolean",
        help="write it like -D n=3, -D size=224x224x3 or -D bias=false")])


def resolve(program: A.Program, net: Optional[str] = None, define: Optional[dict] = None,
            ) -> Union[Network, Family]:
    """Resolve ``program``: the network named ``net`` (or the default), with ``define``.

    Returns a ``Network``, or a ``Family`` when the network depends on ranges that
    ``define`` leaves free.  Raises ``ResolveError`` with located diagnostics.
    """
    define = parse_define(define)
    sources = {program.file: program.text}
    r = _Resolver(program, define)
    _check_defines(r, define, sources)
    try:
        net_name, expr = r.select(net)
    except Fail as f:
        raise ResolveError([f.diag], sources) from None
    needed, resolved = _discover(program, define, r, net_name, expr, sources)
    if needed:
        free = []
        for name in r.defs.ranges:
            if name in needed:
                lo, hi = _range_bounds(r, r.defs.ranges[name], sources)
                free.append(FreeRange(name, lo, hi, r.defs.ranges[name].name_span))
        return Family(net_name, tuple(free), program, tuple(sorted(define.items())))
    body, count = resolved
    bindings = tuple((k, v) for k, v in define.items() if k in r.defs.ranges)
    return Network(net_name, body, count, bindings, program.file, program.text)


def _discover(program, define, r: _Resolver, net_name, expr, sources) -> tuple[dict, Any]:
    """The ranges the network needs, found by resolving it, and with none needed, the
    resolved (body, layer count).

    A binding whose resolution fails may stop before reaching further ranges, so the
    next bindings are tried until one gets through (or all have failed).
    """
    needed: dict = {}
    tried = 0
    while True:
        names = list(needed)
        for combo in lazy_product([range(*_bounds_plus(r, n, sources)) for n in names]):
            tried += 1
            if tried > limits.MAX_FAMILY_MEMBERS:
                return needed, None
            attempt = _Resolver(program, {**define, **dict(zip(names, combo))})
            try:
                resolved = attempt.network(net_name, expr)
            except _Free as free:
                needed[free.name] = True
                break  # start again over the larger set of ranges
            except Fail as f:
                if not names:
                    raise ResolveError([f.diag], sources) from None
                continue
            return needed, resolved
        else:
            return needed, None


def _bounds_plus(r: _Resolver, name: str, sources) -> tuple[int, int]:
    lo, hi = _range_bounds(r, r.defs.ranges[name], sources)
    return lo, hi + 1


def _range_bounds(r: _Resolver, rng: A.RangeDef, sources) -> tuple[int, int]:
    try:
        lo = _as_int(r.value(rng.lo, {}, ()), rng.lo.span, (), "a range bound")
        hi = _as_int(r.value(rng.hi, {}, ()), rng.hi.span, (), "a range bound")
    except Fail as f:
        raise ResolveError([Diagnostic("E211", f.diag.message, f.diag.span, help=f.diag.help)],
                           sources) from None
    except _Free as f:
        raise ResolveError([Diagnostic("E211", f"a range bound cannot use the range `{f.name}`",
                                       rng.span)], sources) from None
    if lo > hi:
        raise ResolveError([Diagnostic("E211", f"empty range {lo}..{hi}: the low end is above "
                                       "the high end", rng.span, help=f"write {hi}..{lo}")],
                           sources)
    return lo, hi


def _check_defines(r: _Resolver, define: dict, sources) -> None:
    d = r.defs
    for name, v in define.items():
        if name in d.consts:
            continue
        if name in d.ranges:
            lo, hi = _range_bounds(r, d.ranges[name], sources)
            if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
                raise ResolveError([Diagnostic(
                    "E210", f"-D {name}={show(v)} is outside the range {lo}..{hi}",
                    d.ranges[name].span, help=f"pick a value from {lo} to {hi}, or widen the "
                    "range in the file")], sources)
            continue
        if name in d.blocks or name in d.networks:
            raise ResolveError([Diagnostic(
                "E210", f"-D {name}: `{name}` is a block, not a constant", d.spans.get(name),
                help="-D sets constants and ranges")], sources)
        known = list(d.consts) + list(d.ranges)
        raise ResolveError([Diagnostic(
            "E210", f"-D {name}: the file has no constant or range `{name}`",
            help=did_you_mean(name, known) or ("its constants and ranges are: "
                                               + ", ".join(known) if known else
                                               "the file defines no constants or ranges"))],
            sources)


def select_all(program: A.Program) -> list:
    """The networks of ``program`` in file order (None for the default network).

    ``[None]`` when there is none, so that resolving reports why.
    """
    try:
        r = _Resolver(program, {})
    except ResolveError:
        return [None]  # resolving will report the duplicate definitions
    named = sorted(r.defs.networks.items(), key=lambda kv: kv[1].span.start)
    names = [None] if r.defs.default is not None else []
    names += [name for name, _ in named]
    return names or [None]
