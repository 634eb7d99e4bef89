"""A PyTorch twin of a checked network: the same graph built from ``torch.nn`` layers,
running PyTorch's own kernels in PyTorch's layout (NCHW), with PatternNet's weights
copied in PyTorch's layouts.

This is how tests/test_torch_twins.py checks that every example computes what PyTorch
computes.  torchvision itself is not used: its wheel on the package registry is
CUDA-built and fails to import beside the CPU torch, so the twin is made from the checked
graph, with one ``torch.nn`` layer per PatternNet layer:

* CONV -> ``nn.Conv2d`` (a ``same`` padding that is not symmetric becomes ``F.pad``
  first, as PyTorch users write it); CONVT -> ``nn.ConvTranspose2d``; POOL/AVGPOOL ->
  ``nn.MaxPool2d``/``nn.AvgPool2d(count_include_pad=True)``; BN -> ``nn.BatchNorm2d`` or
  ``1d`` with the running statistics; LAYERNORM -> ``nn.LayerNorm`` over channels (on an
  image, channels-last as ConvNeXt's LayerNorm2d does); GROUPNORM -> ``nn.GroupNorm``;
  LRN -> ``nn.LocalResponseNorm``; UPSAMPLE -> ``nn.Upsample``; activations -> their
  ``nn`` modules; DROPOUT and DROPPATH are identities (the twin runs in eval mode).
* Weights: kernels HWIO -> OIHW; CONVT (kh, kw, in, out/groups) -> (in, out/groups, kh,
  kw); FC (in, out) -> ``Linear``'s (out, in), and where an FC flattens an image, its
  rows permuted from PatternNet's H, W, C order to PyTorch's C, H, W (so the twin
  flattens as PyTorch does).  An explicit FLATTEN is PatternNet's H, W, C order by
  definition, so the twin flattens channels-last there.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from patternnet.checker import CBranches, CheckedNet, CLayer, CRepeat, CSeq


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def _get(tree: dict, path: str):
    node: Any = tree
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def _pads(padding) -> tuple:
    """((top, bottom), (left, right)) -> (symmetric (ph, pw) or None, F.pad's tuple)."""
    (t, b), (l, r) = padding
    if t == b and l == r:
        return (t, l), None
    return (0, 0), (l, r, t, b)


class _Padded(nn.Module):
    """``F.pad`` (constant ``value``) then ``inner``: an asymmetric padding."""

    def __init__(self, pad: tuple, inner: nn.Module, value: float = 0.0) -> None:
        super().__init__()
        self.pad, self.inner, self.value = pad, inner, value

    def forward(self, x):
        return self.inner(F.pad(x, self.pad, value=self.value))


class _Fn(nn.Module):
    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _conv(layer: CLayer, p: dict) -> nn.Module:
    a = dict(layer.args)
    cin = layer.in_shape[-1]
    sym, pad = _pads(a["padding"])
    m = nn.Conv2d(cin, a["filters"], a["kernel"], a["stride"], sym, a["dilation"], a["groups"],
                  bias=a["bias"])
    with torch.no_grad():
        m.weight.copy_(_t(p["w"]).permute(3, 2, 0, 1))
        if a["bias"]:
            m.bias.copy_(_t(p["b"]))
    return _Padded(pad, m) if pad else m


def _convt(layer: CLayer, p: dict) -> nn.Module:
    a = dict(layer.args)
    m = nn.ConvTranspose2d(layer.in_shape[-1], a["filters"], a["kernel"], a["stride"],
                           tuple(x for x, _ in a["padding"]), a["output_padding"], a["groups"],
                           bias=a["bias"], dilation=a["dilation"])
    with torch.no_grad():
        m.weight.copy_(_t(p["w"]).permute(2, 3, 0, 1))
        if a["bias"]:
            m.bias.copy_(_t(p["b"]))
    return m


def _pool(layer: CLayer, p: dict) -> nn.Module:
    a = dict(layer.args)
    sym, pad = _pads(a["padding"])
    if layer.kind == "POOL":
        return _Padded(pad, nn.MaxPool2d(a["window"], a["stride"], 0, ceil_mode=a["ceil"]),
                       float("-inf")) if pad else nn.MaxPool2d(a["window"], a["stride"], sym,
                                                              ceil_mode=a["ceil"])
    inner = nn.AvgPool2d(a["window"], a["stride"], sym, ceil_mode=a["ceil"],
                         count_include_pad=True)
    return _Padded(pad, inner) if pad else inner


def _fc(layer: CLayer, p: dict) -> nn.Module:
    a = dict(layer.args)
    w = np.asarray(p["w"], np.float32)
    if len(layer.in_shape) == 3:  # rows (h, w, c) -> PyTorch's flatten order (c, h, w)
        h, wd, c = layer.in_shape
        w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
    m = nn.Linear(w.shape[0], a["units"], bias=a["bias"])
    with torch.no_grad():
        m.weight.copy_(_t(w.T))
        if a["bias"]:
            m.bias.copy_(_t(p["b"]))
    return nn.Sequential(nn.Flatten(), m) if len(layer.in_shape) == 3 else m


def _bn(c: int, image: bool, eps: float, momentum: float, p: dict, s: dict) -> nn.Module:
    m = (nn.BatchNorm2d if image else nn.BatchNorm1d)(c, eps=eps, momentum=momentum)
    with torch.no_grad():
        m.weight.copy_(_t(p["scale"]))
        m.bias.copy_(_t(p["bias"]))
        m.running_mean.copy_(_t(s["mean"]))
        m.running_var.copy_(_t(s["var"]))
    return m


def _norm(layer: CLayer, p: dict, s: dict) -> nn.Module:
    a, c, image = dict(layer.args), layer.in_shape[-1], len(layer.in_shape) == 3
    if layer.kind == "BN":
        return _bn(c, image, a["eps"], a["momentum"], p, s)
    if layer.kind == "GROUPNORM":
        m: nn.Module = nn.GroupNorm(a["groups"], c, eps=a["eps"])
    else:
        m = nn.LayerNorm(c, eps=a["eps"])
    with torch.no_grad():
        m.weight.copy_(_t(p["scale"]))
        m.bias.copy_(_t(p["bias"]))
    if layer.kind == "LAYERNORM" and image:  # ConvNeXt's LayerNorm2d
        ln = m
        return nn.Sequential(_Fn(lambda x: x.permute(0, 2, 3, 1)), ln,
                             _Fn(lambda x: x.permute(0, 3, 1, 2)))
    return m


def _skip(layer: CLayer, p: dict, s: dict) -> nn.Module:
    a = dict(layer.args)
    if not a["project"]:
        return nn.Identity()
    conv = nn.Conv2d(layer.in_shape[-1], a["filters"], 1, a["stride"], bias=False)
    with torch.no_grad():
        conv.weight.copy_(_t(p["conv"]["w"]).permute(3, 2, 0, 1))
    return nn.Sequential(conv, _bn(a["filters"], True, a["eps"], a["momentum"], p["bn"],
                                   s["bn"]))


def _shuffle(groups: int) -> Callable:
    def fn(x):
        n, c, h, w = x.shape if x.dim() == 4 else (*x.shape, 1, 1)
        y = x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        return y if x.dim() == 4 else y.reshape(n, c)
    return fn


def _scale(gamma) -> Callable:
    g = _t(gamma)
    return lambda x: x * (g.view(1, -1, 1, 1) if x.dim() == 4 else g)


_ACTS: dict[str, Callable[[dict], nn.Module]] = {
    "RELU": lambda a: nn.ReLU(), "TANH": lambda a: nn.Tanh(), "SIGMOID": lambda a: nn.Sigmoid(),
    "GELU": lambda a: nn.GELU(approximate="tanh" if a["tanh"] else "none"),
    "SOFTMAX": lambda a: nn.Softmax(dim=1), "LRELU": lambda a: nn.LeakyReLU(a["slope"]),
    "ELU": lambda a: nn.ELU(a["alpha"]), "RELU6": lambda a: nn.ReLU6(),
    "HARDSIGMOID": lambda a: nn.Hardsigmoid(), "HARDSWISH": lambda a: nn.Hardswish(),
    "SILU": lambda a: nn.SiLU(), "ID": lambda a: nn.Identity(), "INPUT": lambda a: nn.Identity(),
    "DROPOUT": lambda a: nn.Dropout(a["rate"]), "DROPPATH": lambda a: nn.Identity(),
}


def module(layer: CLayer, params: dict, state: dict) -> nn.Module:
    """The ``torch.nn`` twin of one checked layer, its weights copied in."""
    p, s, a, kind = _get(params, layer.path), _get(state, layer.path), dict(layer.args), layer.kind
    if kind in _ACTS:
        return _ACTS[kind](a)
    if kind == "CONV":
        return _conv(layer, p)
    if kind == "CONVT":
        return _convt(layer, p)
    if kind in ("POOL", "AVGPOOL"):
        return _pool(layer, p)
    if kind == "GAP":
        return _Fn(lambda x: x.mean(dim=(2, 3)))
    if kind == "FLATTEN":  # PatternNet's order, H, W, C (see the module's docstring)
        return _Fn(lambda x: x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x)
    if kind == "FC":
        return _fc(layer, p)
    if kind in ("BN", "LAYERNORM", "GROUPNORM"):
        return _norm(layer, p, s)
    if kind == "LRN":
        return nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])
    if kind == "SCALE":
        return _Fn(_scale(p["scale"]))
    if kind == "SPLIT":
        return _Fn(lambda x: torch.chunk(x, a["parts"], dim=1)[a["index"]])
    if kind == "SHUFFLE":
        return _Fn(_shuffle(a["groups"]))
    if kind == "UPSAMPLE":
        mode = "bilinear" if a["bilinear"] else "nearest"
        corners = a["corners"] if a["bilinear"] else None
        return nn.Upsample(size=tuple(a["out"]), mode=mode, align_corners=corners)
    if kind == "SKIP":
        return _skip(layer, p, s)
    raise NotImplementedError(f"no torch twin for {kind}")


def _gate(outs: list) -> torch.Tensor:
    dim = max(o.dim() for o in outs)
    y = None
    for o in outs:
        o = o.view(o.shape[0], o.shape[1], 1, 1) if o.dim() < dim else o
        y = o if y is None else y * o
    return y


_MERGES: dict[str, Callable[[list], torch.Tensor]] = {
    "+": lambda outs: sum(outs[1:], outs[0]),
    "|": lambda outs: torch.cat(outs, dim=1),
    "*": _gate,
}


class Twin(nn.Module):
    """The checked graph, run with a ``torch.nn`` module per layer (NCHW in and out)."""

    def __init__(self, net: CheckedNet, params: dict, state: dict) -> None:
        super().__init__()
        self.net = net
        self.layers = nn.ModuleDict({l.path.replace(".", "/"): module(l, params, state)
                                     for l in net.layers})

    def run(self, node, x):
        if isinstance(node, CLayer):
            return self.layers[node.path.replace(".", "/")](x)
        if isinstance(node, CSeq):
            for item in node.items:
                x = self.run(item, x)
            return x
        if isinstance(node, CRepeat):
            for copy in node.copies:
                x = self.run(copy, x)
            return x
        assert isinstance(node, CBranches)
        return _MERGES[node.op]([self.run(b, x) for b in node.branches])

    def forward(self, x):
        return self.run(self.net.graph, x)
