"""Check stage: a resolved ``Network`` -> a ``CheckedNet`` with every shape, count and cost.

Pure Python; never imports jax or numpy.  Each layer kind's shape rule and weights
are in its definition (patternnet/kinds/); this module walks the resolved network in
execution order, expands repeats copy by copy, decides each ``?``, names every
layer with a stable path, applies the bare-layer defaults, and collects errors
(E3xx), lints (E320-E323, errors under ``strict``) and notes.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Iterator, Optional, Sequence, Union

from .record import field, record
from . import limits
from .ast import Span
from .diagnostics import Diagnostic, Fail, Frame, ShapeError
from .layers import CONTEXT, DEFAULTS, LAYERS
from .resolver import Network, RBlock, RBranches, RLayer, ROptional, RRepeat, RSeq
from .kinds.base import no_weights, tree_size
from .merges import MERGES, BranchError
from .rules import RuleError, fmt_shape

DEFAULT_INPUT = (32, 32, 3)
DEFAULT_CLASSES = 10
BARE_FIRST_FILTERS = 32
BARE_MAX_FILTERS = 512
BARE_HIDDEN_UNITS = 128

# --- the checked graph ---------------------------------------------------------------


@record
class CLayer:
    path: str                                # e.g. "stage2.bottleneck1.conv2"
    kind: str                                # canonical layer name
    args: tuple[tuple[str, Any], ...]        # every argument, defaults filled in
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int                              # trainable
    state: int                               # non-trainable (BN running statistics)
    macs: int
    rf: tuple[int, int]                      # receptive field on the input image
    jump: tuple[int, int]                    # effective stride
    span: Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)
    notes: tuple[str, ...] = ()              # e.g. "flattens 7x7x512", "bare: 64 filters"
    given: tuple[str, ...] = ()              # the arguments written in the file

    def arg(self, name: str) -> Any:
        return dict(self.args)[name]

    @property
    def activations(self) -> int:
        n = 1
        for d in self.out_shape:
            n *= d
        return n


@record
class CSeq:
    items: tuple["CNode", ...]


@record
class CRepeat:
    """``body*count`` with each copy checked (and named) on its own."""
    copies: tuple[CSeq, ...]
    span: Span = field(compare=False)


@record
class CBranches:
    op: str
    branches: tuple[CSeq, ...]
    out_shape: tuple[int, ...]
    span: Span = field(compare=False)


CNode = Union[CLayer, CSeq, CRepeat, CBranches]


def walk(node: CNode) -> Iterator[CNode]:
    """Every node of a checked graph, depth first in execution order, ``node`` itself
    first: the one walk that the backend, the diagram and the tests share."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, CSeq):
            stack.extend(reversed(n.items))
        elif isinstance(n, CRepeat):
            stack.extend(reversed(n.copies))
        elif isinstance(n, CBranches):
            stack.extend(reversed(n.branches))


def layers_in(node: CNode) -> Iterator[CLayer]:
    """The layers of a checked graph (or part of one), execution order."""
    return (n for n in walk(node) if isinstance(n, CLayer))


@record
class Totals:
    params: int
    state: int
    macs: int
    activations: int          # elements of every layer output, batch 1

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def param_bytes(self) -> int:
        return 4 * (self.params + self.state)

    @property
    def activation_bytes(self) -> int:
        return 4 * self.activations


@record
class CheckedNet:
    name: Optional[str]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    graph: CSeq
    layers: tuple[CLayer, ...]               # execution order
    totals: Totals
    notes: tuple[Diagnostic, ...] = ()       # dropped `?`, lints when not strict
    bindings: tuple[tuple[str, int], ...] = ()
    choices: tuple[bool, ...] = ()           # the on/off of each `?`, in order met
    file: str = field(default="<string>", compare=False)

    @property
    def params(self) -> int:
        return self.totals.params

    @property
    def macs(self) -> int:
        return self.totals.macs

    @property
    def label(self) -> str:
        return self.name or "(default network)"


# --- the walk ------------------------------------------------------------------------


@record
class _Copy:
    """The copy of a repeat being checked, and the spatial sizes each copy went through.

    The trails are cons-lists ``(newest, rest)``: a copy extends them in constant time,
    so a repeat of any count is checked in time linear in its count (tuples rebuilt per
    copy made ``CONV*32000`` quadratic).  ``head`` keeps the first copies' trails, so
    that a note naming the first and the last few copies costs the same in copy 30,000
    as in copy 9 (a `?` that fails in every copy asks for one each time)."""
    span: Span
    index: int
    count: int
    trail: tuple           # cons-list of this copy's sizes, newest first
    earlier: Optional[tuple]  # cons-list of the earlier copies' trails, newest first
    head: tuple            # the trails of the first _HEAD copies done

    @property
    def last(self) -> str:
        return self.trail[0]

    def passing(self, size: str) -> "_Copy":
        """This copy, its trail extended by ``size``."""
        return _Copy(self.span, self.index, self.count, (size, self.trail), self.earlier,
                     self.head)

    def shown(self) -> list[tuple[int, list[str]]]:
        """(copy number, sizes) of the copies a note lists: every copy up to
        _TRAILS_SHOWN of them, else the first _HEAD and the last _TAIL."""
        if self.index <= _TRAILS_SHOWN:
            trails = _items(self.earlier) + [self.trail]
            return [(i, _items(t)) for i, t in enumerate(trails, 1)]
        recent, rest = [self.trail], self.earlier
        while len(recent) < _TAIL and rest is not None:
            recent.append(rest[0])
            rest = rest[1]
        recent.reverse()
        first = self.index - len(recent) + 1
        return ([(i, _items(t)) for i, t in enumerate(self.head, 1)]
                + [(first + k, _items(t)) for k, t in enumerate(recent)])


_TRAILS_SHOWN = 8          # copies listed in full; past it, the first _HEAD and last _TAIL
_HEAD, _TAIL = 4, 3


class _State:
    """Everything the walk has done that a `?` which does not fit must undo.

    Every slot holds an immutable value -- a number, a tuple, a cons-list
    ``(newest, rest)``, or a name-counter dict that is copied, never changed, once
    made -- so the tuple of the slots' values is the whole state: ``save`` takes it (one
    C call, the references only), ``undo`` puts it back, and a slot added here is saved
    and undone with the rest (one that ``__init__`` forgets makes ``save`` fail, not
    leak).  The slots are assigned, not the object rebuilt, because every layer changes
    half of them: a frozen state built anew per layer made the check stage a third
    slower.  What a `?` must not undo (the count of `?` met, the choices that did not
    fit, the static-argument cache) lives on the walker.
    """
    __slots__ = ("layers", "count", "notes", "made", "scopes", "copies", "rf", "jump",
                 "last_filters", "halvings", "prev_kind", "last_param")

    def __init__(self):
        self.layers: Optional[tuple] = None   # cons-list of the CLayers emitted, newest first
        self.count = 0                        # how many: the limit is checked on every layer
        self.notes: Optional[tuple] = None    # cons-list of lints and N330 notes
        self.made: Optional[tuple] = None     # cons-list of each `?` kept or left out
        self.scopes: tuple = (("", {}), None)  # cons-list of (path prefix, name counters)
        self.copies: tuple[_Copy, ...] = ()   # the repeat copies being checked, outermost first
        self.rf, self.jump = (1, 1), (1, 1)   # receptive field, effective stride
        self.last_filters: Optional[int] = None  # the last CONV's filters, for a bare CONV
        self.halvings = 0                     # spatial halvings since that CONV
        self.prev_kind: Optional[str] = None  # for E323 (RELU after RELU)
        # the last parameterised layer's emission key (see ``_Walker.emission``) when it
        # is a bare FC, else None: after the first pass, that FC is the classifier
        self.last_param: Optional[tuple] = None

    def save(self) -> tuple:
        return _snapshot(self)

    def undo(self, saved: tuple) -> None:
        for name, value in zip(_State.__slots__, saved):
            setattr(self, name, value)


_snapshot = attrgetter(*_State.__slots__)


def _items(cons: Optional[tuple]) -> list:
    """A cons-list's items, oldest first."""
    out = []
    while cons is not None:
        out.append(cons[0])
        cons = cons[1]
    out.reverse()
    return out


def _named(scopes: tuple, key: str) -> tuple[str, tuple]:
    """The next path for ``key`` in the innermost scope, and the scopes that count it.  A
    key ending in a digit takes a `_` before the count: block `a1`'s 11th copy and block
    `a11`'s first would both be `a111` (and share weights); they are `a1_11` and `a11_1`."""
    (prefix, counters), outer = scopes
    n = counters.get(key, 0) + 1
    sep = "_" if key[-1].isdigit() else ""
    return f"{prefix}{key}{sep}{n}", ((prefix, {**counters, key: n}), outer)


class _Walker:
    def __init__(self, net: Network, input_shape, classes, strict, choices, classifier):
        self.net = net
        self.input_shape = input_shape
        self.classes = classes
        self.strict = strict
        self.choices = list(choices or ())
        self.classifier = classifier           # emission key of the bare FC that gets `classes`
        self.state = _State()                  # all that a failed `?` undoes
        # kept across a failed `?`:
        self.choice_at = 0                     # `?` instances met
        self.dropped_on: list[int] = []        # `?` instances asked on that did not fit
        self._static: dict = {}                # per resolved layer, see ``static``
        self._sizes: dict = {}                 # (kind, shape, args) -> counts, see ``counts``

    @property
    def layers(self) -> list[CLayer]:
        return _items(self.state.layers)

    @property
    def notes(self) -> list[Diagnostic]:
        return _items(self.state.notes)

    @property
    def made(self) -> list[bool]:
        return _items(self.state.made)

    def note(self, diag: Diagnostic) -> None:
        self.state.notes = (diag, self.state.notes)

    # nodes ----------------------------------------------------------------------------
    def seq(self, seq: RSeq, shape) -> tuple[CSeq, tuple]:
        out = []
        for item in seq.items:
            node, shape = self.node(item, shape)
            if node is not None:
                out.append(node)
        return CSeq(tuple(out)), shape

    def node(self, n, shape):
        if isinstance(n, RLayer):
            return self.layer(n, shape)
        if isinstance(n, RBlock):
            return self.block(n, shape)
        if isinstance(n, RRepeat):
            return self.repeat(n, shape)
        if isinstance(n, ROptional):
            return self.optional(n, shape)
        if isinstance(n, RBranches):
            return self.branches(n, shape)
        if isinstance(n, RSeq):
            return self.seq(n, shape)
        raise AssertionError(f"unexpected node {n!r}")

    def block(self, b: RBlock, shape):
        # (a failure needs no popping: whoever catches it puts back a state of its own)
        s = self.state
        path, scopes = _named(s.scopes, b.name)
        s.scopes = ((path + ".", {}), scopes)
        body, shape = self.seq(b.body, shape)
        s.scopes = scopes
        return body, shape

    def repeat(self, r: RRepeat, shape):
        copies: list[CSeq] = []
        earlier: Optional[tuple] = None
        head: tuple = ()
        s = self.state
        outer = s.copies
        for i in range(r.count):
            s.copies = outer + (_Copy(r.span, i + 1, r.count, (_spatial(shape), None), earlier,
                                      head),)
            body, shape = self.seq(r.body, shape)
            done = s.copies[-1]
            earlier = (done.trail, done.earlier)
            head = head if len(head) >= _HEAD else head + (done.trail,)
            copies.append(body)
        s.copies = outer
        return CRepeat(tuple(copies), r.span), shape

    def optional(self, o: ROptional, shape):
        i = self.choice_at
        self.choice_at += 1
        want = self.choices[i] if i < len(self.choices) else True
        if want:
            saved = self.state.save()
            try:
                body, out = self.seq(o.body, shape)
            except Fail as f:
                self.state.undo(saved)  # as if the `?` had never been tried
                if i < len(self.choices):
                    self.dropped_on.append(i)
                self.note(Diagnostic(
                    "N330", f"`?` left out{self._where()}: it does not fit input "
                    f"{fmt_shape(shape)}", o.span, severity="note", trace=o.trace,
                    label="left out", notes=(f"it would fail with: {f.diag.message}",)))
            else:
                self.state.made = (True, self.state.made)
                return body, out
        self.state.made = (False, self.state.made)
        return None, shape

    def branches(self, b: RBranches, shape):
        # a SKIP branch's body and shape are None until the others give its target
        merge = MERGES[b.op]
        outs: list[Optional[tuple]] = []
        bodies: list[Optional[CSeq]] = []
        skips: list[int] = []
        s = self.state
        rf0, jump0 = s.rf, s.jump
        rfs: dict[int, tuple] = {}  # branch -> (receptive field, jump) at its end
        for item in b.items:
            if _is_skip(item):
                skips.append(len(bodies))
                bodies.append(None)
                outs.append(None)
                continue
            s.rf, s.jump = rf0, jump0
            body, out = self.seq(item, shape)
            rfs[len(bodies)] = (s.rf, s.jump)
            bodies.append(body)
            outs.append(out)
        if skips:
            if not merge.takes_skip:
                raise self.fail("E306", "SKIP only goes in `+` branches", b.items[skips[0]].span,
                                b.trace, help=f"use ID to pass the input through a `{b.op}` "
                                "branch")
            target = next((o for o in outs if o is not None), None)
            if target is None:
                raise self.fail("E306", "every branch is SKIP: there is nothing to add to",
                                b.span, b.trace,
                                help="give one branch layers: `(CONV -> BN + SKIP)`")
            for i in skips:
                skip_layer = b.items[i].items[0]
                assert isinstance(skip_layer, RLayer)  # _is_skip said so
                s.rf, s.jump = rf0, jump0
                bodies[i] = CSeq((self.skip(skip_layer, shape, target),))
                outs[i] = target
                rfs[i] = (s.rf, s.jump)
        try:
            result = merge.rule([o for o in outs if o is not None])
        except BranchError as e:
            raise self.fail(e.code, e.message, b.items[e.index].span, b.trace,
                            help=e.help) from None
        s.rf, s.jump = _merged_field(rfs, outs, result)
        done = tuple(body for body in bodies if body is not None)
        assert len(done) == len(bodies)  # every SKIP has its body by now
        return CBranches(b.op, done, result, b.span), result

    def skip(self, layer: RLayer, shape, target) -> CLayer:
        spec = LAYERS["SKIP"]
        try:
            r = spec.rule(shape, {**self.full_args(layer)[0], "target": target})
        except RuleError as e:
            raise self.fail(e.code, e.message, layer.span, layer.trace, help=e.help,
                            notes=e.notes) from None
        s = self.state
        if r.window is not None:
            s.jump = (s.jump[0] * r.window[1][0], s.jump[1] * r.window[1][1])
        path, s.scopes = _named(s.scopes, "skip")
        items = tuple(r.args.items())
        params, state = self.counts(spec, shape, r.args, items)
        return self.emit(CLayer(path, "SKIP", items, shape, r.out_shape,
                                params, state, r.macs, s.rf, s.jump, layer.span,
                                layer.trace, tuple(r.notes), ()))

    # layers ---------------------------------------------------------------------------
    def layer(self, rl: RLayer, shape):
        kind = rl.kind
        if kind == "INPUT":
            return self.emit(self.input_layer(rl)), self.input_shape
        if kind == "SKIP":
            raise self.fail("E306", "SKIP only goes in `+` branches: `(CONV -> BN + SKIP)`",
                            rl.span, rl.trace, help="use ID for a plain identity layer")
        args, notes = self.full_args(rl)
        spec = LAYERS[kind]
        try:
            r = spec.rule(shape, args)
        except RuleError as e:
            raise self.fail(e.code, e.message, rl.span, rl.trace, help=e.help,
                            notes=e.notes) from None
        self.lint(rl, r, shape)
        s = self.state
        if r.window is not None:
            (kh, kw), (sh, sw) = r.window
            s.rf = (s.rf[0] + (kh - 1) * s.jump[0], s.rf[1] + (kw - 1) * s.jump[1])
            s.jump = (s.jump[0] * sh, s.jump[1] * sw)
        if r.zoom != (1, 1):  # finer than the input's pixels: the jump stays 1 (docs §10)
            s.jump = (max(1, s.jump[0] // r.zoom[0]), max(1, s.jump[1] // r.zoom[1]))
        if kind in ("POOL", "AVGPOOL") and len(shape) == 3 and r.out_shape[0] < shape[0]:
            s.halvings += 1
        if kind == "CONV":
            s.last_filters, s.halvings = r.out_shape[-1], 0
        path, s.scopes = _named(s.scopes, _KEYS[kind])
        items = tuple(r.args.items())
        params, state = self.counts(spec, shape, r.args, items)
        layer = CLayer(path, kind, items, shape, r.out_shape, params, state,
                       r.macs, s.rf, s.jump, rl.span, rl.trace,
                       tuple(notes + r.notes) if notes or r.notes else (),
                       self._static[id(rl)][3])
        if s.copies and r.out_shape != shape and len(r.out_shape) == 3:
            size = _spatial(r.out_shape)
            if size != s.copies[-1].last:
                s.copies = s.copies[:-1] + (s.copies[-1].passing(size),)
        s.prev_kind = kind
        return self.emit(layer, rl), r.out_shape

    def counts(self, spec, shape: tuple, args: dict, items: tuple) -> tuple[int, int]:
        """Parameters and state of a layer, counted from the trees its kind declares (the
        backend initialises the same trees).  Cached by kind, shape and arguments: the
        copies of a repeat would otherwise build the same trees once each (a fifth of
        checking `CONV*32000`)."""
        if spec.weights is no_weights:
            return 0, 0
        key = (spec.name, shape, items)
        hit = self._sizes.get(key)
        if hit is None:
            params, state = spec.weights(shape, args)
            hit = self._sizes[key] = (tree_size(params), tree_size(state))
        return hit

    def emission(self, rl: RLayer) -> tuple:
        """What names this check of ``rl`` whatever the `?`s decide: the resolved layer
        (each block call has its own) and the copy of every repeat around it.  An
        ordinal would shift when a `?` before the layer is kept on one pass and left out
        on the other, and give the classifier's units to a layer inside that `?`."""
        return id(rl), tuple(c.index for c in self.state.copies)

    def emit(self, layer: CLayer, rl: Optional[RLayer] = None) -> CLayer:
        s = self.state
        if s.count >= limits.MAX_LAYERS:
            raise self.fail("E208", f"more than {limits.MAX_LAYERS:,} layers after expanding "
                            "every repeat (limit MAX_LAYERS)", layer.span, layer.trace)
        s.layers, s.count = (layer, s.layers), s.count + 1
        if layer.params:
            bare_fc = layer.kind == "FC" and "units" not in layer.given
            s.last_param = self.emission(rl) if bare_fc and rl is not None else None
        return layer

    def input_layer(self, rl: RLayer) -> CLayer:
        return CLayer("input", "INPUT", (("shape", self.input_shape),), (), self.input_shape,
                      0, 0, 0, (1, 1), (1, 1), rl.span, rl.trace,
                      () if rl.given("shape") or self.input_shape != DEFAULT_INPUT else
                      ("bare INPUT: 32x32x3 (CIFAR-10), override with --input",),
                      tuple(k for k, _ in rl.args))

    def full_args(self, rl: RLayer) -> tuple[dict, list]:
        """Every argument of ``rl``: given, else the table's default, else the bare rule."""
        fixed, bare = self.static(rl)
        if not bare:
            return fixed, []
        args, notes = dict(fixed), []
        for name in bare:
            args[name], note = self.bare_default(rl)
            notes.append(note)
        return args, notes

    def static(self, rl: RLayer) -> tuple[dict, tuple]:
        """The arguments of ``rl`` that do not depend on the network, and the names of
        those that do.  Cached: a repeat checks the same resolved layer once per copy."""
        hit = self._static.get(id(rl))
        if hit is not None and hit[0] is rl:
            return hit[1], hit[2]
        given = dict(rl.args)
        defaults = DEFAULTS[rl.kind]
        fixed, bare = {}, []
        for a in LAYERS[rl.kind].args:
            if a.name in given:
                fixed[a.name] = given[a.name]
            elif a.name in defaults:
                fixed[a.name] = defaults[a.name]
            elif a.default is CONTEXT:
                bare.append(a.name)
            else:
                raise AssertionError(f"{rl.kind}.{a.name} has no default")
        if rl.kind in ("POOL", "AVGPOOL") and fixed["stride"] is None:
            fixed["stride"] = fixed["window"]
        self._static[id(rl)] = (rl, fixed, tuple(bare), tuple(given))
        return fixed, tuple(bare)

    def bare_default(self, rl: RLayer):
        s = self.state
        if rl.kind == "CONV":
            if s.last_filters is None:
                return BARE_FIRST_FILTERS, f"bare CONV: {BARE_FIRST_FILTERS} filters (the first)"
            n = s.last_filters  # doubling stops at 512 but never lowers a count
            if s.halvings:
                n = max(n, min(n * 2 ** s.halvings, BARE_MAX_FILTERS))
            why = (f"doubled after {s.halvings} pooling layer"
                   f"{'s' if s.halvings > 1 else ''}" if s.halvings else "as the previous CONV")
            return n, f"bare CONV: {n} filters ({why})"
        if self.classifier is not None and self.emission(rl) == self.classifier:
            return self.classes, f"bare FC: {self.classes} units, the classifier (--classes)"
        return BARE_HIDDEN_UNITS, f"bare FC: {BARE_HIDDEN_UNITS} units (hidden)"

    # lints ----------------------------------------------------------------------------
    def lint(self, rl: RLayer, r, shape) -> None:
        for code, message, help in r.lints:
            self.warn(code, message, rl, help)
        if rl.kind == "RELU" and self.state.prev_kind == "RELU":
            self.warn("E323", "RELU directly after RELU does nothing", rl,
                      "remove one of them")
        if rl.kind == "CONV" and not rl.given("pad"):
            self.same_note(rl, r)

    def same_note(self, rl: RLayer, r) -> None:
        """N332: a defaulted `p=same` that pads unevenly, where PyTorch's Conv2d would pad
        every side alike: the same shape as PyTorch's p=k//2, but other numbers."""
        (t, b), (left, right) = r.args["padding"]
        if t == b and left == right:
            return
        k = r.args["kernel"]
        torch_p = f"{k[0] // 2}" if k[0] == k[1] else f"({k[0] // 2}, {k[1] // 2})"
        self.note(Diagnostic(
            "N332", f"CONV's default p=same pads {t} above and {b} below, {left} left and "
            f"{right} right; PyTorch's Conv2d(padding={torch_p}) pads every side alike: the "
            "same size, other values" + self._where(),
            rl.span, severity="note", trace=rl.trace,
            help=f"to compute what PyTorch computes write p={torch_p}; write p=same to keep "
            "XLA's padding (and this note away)"))

    def warn(self, code, message, rl: RLayer, help=None):
        self.note(Diagnostic(code, message + self._where(), rl.span, help=help,
                             severity="error" if self.strict else "warning", trace=rl.trace))

    # errors ---------------------------------------------------------------------------
    def _where(self) -> str:
        copies = self.state.copies
        if not copies:
            return ""
        return " (" + ", ".join(f"copy {c.index} of {c.count}" for c in copies) + ")"

    def fail(self, code, message, span, trace=(), help=None, notes=()):
        notes = list(notes)
        label = ""
        copies = self.state.copies
        if copies:
            inner = copies[-1]
            label = f"in copy {inner.index} of {inner.count}"
            for outer, within in zip(reversed(copies[:-1]), reversed(copies[1:])):
                notes.append(f"the repeat at {_where(within.span)} is in copy {outer.index} of "
                             f"{outer.count} of the repeat at {_where(outer.span)}")
            notes.insert(0, _copy_trails(inner, message.split(" ", 1)[0]))
        return Fail(Diagnostic(code, message, span, help=help, notes=tuple(notes),
                               trace=tuple(trace), label=label))


#: path names: conv1, pool2, ...; a name ending in a digit takes a `_` before the count
#: (relu6_1, not relu61: see ``_named``)
_KEYS = {k: k.lower() for k in LAYERS}


def _lint_dropout(w: _Walker) -> None:
    """E322: dropout with no parameterised layer after it only adds noise to the output."""
    layers = w.layers
    last_param = max((i for i, l in enumerate(layers) if l.params), default=-1)
    for i in range(len(layers) - 1, last_param, -1):
        layer = layers[i]
        if layer.kind == "DROPOUT":
            w.note(Diagnostic(
                "E322", "DROPOUT after the last parameterised layer only adds noise to the output",
                layer.span, help="move it before the last FC, or remove it",
                severity="error" if w.strict else "warning", trace=layer.trace))
            break


def _merged_field(rfs: dict, outs: list, result: tuple) -> tuple[tuple, tuple]:
    """The receptive field and jump after a merge: the widest field of any branch (an
    output depends on all of them), and the jump of the branches on the merged grid (a
    gate's GAP branch strides over the whole image, but the gated output keeps the
    image's positions)."""
    fields = list(rfs.values())
    grid = [rfs[i][1] for i, o in enumerate(outs) if o is not None and o[:-1] == result[:-1]]
    rf = (max(f[0][0] for f in fields), max(f[0][1] for f in fields))
    jumps = grid or [f[1] for f in fields]
    return rf, (max(j[0] for j in jumps), max(j[1] for j in jumps))


def _fold_left_out(notes: list[Diagnostic]) -> tuple[Diagnostic, ...]:
    """The notes, a `?` left out in more than four copies of a repeat told of three
    times: in its first two copies and its last, which counts those in between (a POOL?
    in `*15734` made 15,729 notes, 5 MB of output)."""
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(notes):
        if d.code == "N330":
            groups.setdefault((d.span, d.trace), []).append(i)
    out, drop = list(notes), set()
    for where in groups.values():
        if len(where) > 4:  # (folding one note would save nothing)
            drop.update(where[2:-1])
            last = out[where[-1]]
            between = (f"also left out in the {len(where) - 3:,} copies between the two "
                       "above and this one",)
            out[where[-1]] = Diagnostic(last.code, last.message, last.span, last.help,
                                        last.notes + between, last.severity, last.label,
                                        last.trace)
    return tuple(d for i, d in enumerate(out) if i not in drop)


def _spatial(shape) -> str:
    return f"{shape[0]}" if len(shape) == 3 and shape[0] == shape[1] else fmt_shape(shape)


def _where(span: Span) -> str:
    return f"{span.line}:{span.col}"


def _copy_trails(copy: _Copy, failing: str) -> str:
    parts = [f"copy {i}: " + "→".join(t) for i, t in copy.shown()]
    if copy.index > _TRAILS_SHOWN:  # a note of 30,000 copies would bury the error
        parts.insert(_HEAD, f"... {copy.index - _HEAD - _TAIL:,} more")
    return ", ".join(parts) + f", then {failing}"


def _is_skip(seq: RSeq) -> bool:
    return len(seq.items) == 1 and isinstance(seq.items[0], RLayer) and seq.items[0].kind == "SKIP"


# --- the public entry ----------------------------------------------------------------


@record
class Attempt:
    """One check of a network under a list of ``?`` choices: the result (a
    ``CheckedNet`` or the ``ShapeError``), and what the walk met on the way, which
    ``patternnet.pipeline`` uses to enumerate a family's on/off members."""
    result: Union[CheckedNet, ShapeError] = field(compare=False)
    made: tuple[bool, ...]          # each `?` met: kept or left out
    choice_at: int                  # how many `?` instances the walk met
    dropped_on: tuple[int, ...]     # choices asked "on" that did not fit (left out)

    @property
    def ok(self) -> bool:
        return isinstance(self.result, CheckedNet)


def check_network(net: Network, *, input_shape: Optional[Sequence[int]] = None,
                  classes: Optional[int] = None, strict: bool = False,
                  choices: Sequence[bool] = ()) -> CheckedNet:
    """Check one resolved network; raise ShapeError with every error found.

    ``choices`` turns each `?` met on or off in order; past its end a `?` is kept
    where it fits.
    """
    result = attempt(net, input_shape, classes, strict, choices).result
    if isinstance(result, ShapeError):
        raise result
    return result


def attempt(net: Network, input_shape: Optional[Sequence[int]] = None,
            classes: Optional[int] = None, strict: bool = False,
            choices: Sequence[bool] = ()) -> Attempt:
    """Check ``net`` under ``choices`` without raising: an ``Attempt``."""
    result, w = _walk(net, input_shape, classes, strict, choices)
    return Attempt(result, tuple(w.made), w.choice_at, tuple(w.dropped_on))


def _walk(net: Network, input_shape, classes, strict, choices):
    """(CheckedNet or ShapeError, the walker) -- the walker tells which `?` it met."""
    written = net.input.get("shape")
    shape = written or (tuple(input_shape) if input_shape else DEFAULT_INPUT)
    classes = DEFAULT_CLASSES if classes is None else classes
    sources = {net.file: net.text}
    classifier = None
    for _ in range(2):  # the second pass gives the bare classifier FC its `classes` units
        w = _Walker(net, shape, classes, strict, choices, classifier)
        try:
            graph, out = w.seq(net.body, ())
        except Fail as f:
            errors = [f.diag] + [d for d in w.notes if d.severity == "error"]
            return ShapeError(errors, sources), w
        last_param = w.state.last_param
        if last_param is None or classifier is not None:
            break
        classifier = last_param
    _lint_dropout(w)
    if written and input_shape and tuple(input_shape) != written:
        w.note(Diagnostic(
            "N331", f"input shape {fmt_shape(input_shape)} not used: this network writes "
            f"INPUT({fmt_shape(written)})", net.input.span, severity="note",
            help="--input / input_shape= set a bare INPUT only; to vary a written one, use a "
            "constant: `size = 224x224x3` ... `INPUT(size)`, then -D size=64x64x3"))
    notes = _fold_left_out(w.notes)
    errors = [d for d in notes if d.severity == "error"]
    if errors:
        return ShapeError(errors, sources), w
    layers = tuple(w.layers)
    # the backend keys weights by path: two layers on one path would share them
    assert len({l.path for l in layers}) == len(layers), "two layers named alike"
    totals = Totals(sum(l.params for l in layers), sum(l.state for l in layers),
                    sum(l.macs for l in layers), sum(l.activations for l in layers[1:]))
    checked = CheckedNet(net.name, shape, out, graph, layers, totals, notes,
                         net.bindings, tuple(w.made), net.file)
    return checked, w
