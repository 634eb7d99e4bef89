"""Moving channels around: SPLIT and SHUFFLE (ShuffleNetV2's channel split and shuffle)."""

from __future__ import annotations

from ..rules import Out, RuleError, divides
from .base import ArgSpec, LayerSpec


def split_rule(shape: tuple, a: dict) -> Out:
    parts, index, c = a["parts"], a["index"], shape[-1]
    if index >= parts:
        raise RuleError("E309", f"SPLIT index={index} is past the last of its {parts} parts "
                        f"(numbered 0 to {parts - 1})",
                        help=f"use an index from 0 to {parts - 1}")
    divides("SPLIT", "parts", parts, c, help=f"ShuffleNetV2 splits an even channel count in "
            f"half: make the channels a multiple of {parts}")
    return Out(shape[:-1] + (c // parts,), a)


def shuffle_rule(shape: tuple, a: dict) -> Out:
    divides("SHUFFLE", "groups", a["groups"], shape[-1])
    return Out(shape, a)


SPLIT = LayerSpec(
    "SPLIT", (
        ArgSpec("parts", "int", 2, doc="equal parts the channels are cut into"),
        ArgSpec("index", "nat", 0, doc="which part to keep, from 0"),
    ), doc="one of `parts` equal slices of the channels, in order (with `|`: ShuffleNetV2's "
    "channel split)", rule=split_rule, summary=lambda a: f"{a['parts']}, {a['index']}",
    tokens=lambda a: [" ", f"{a['index'] + 1}/{a['parts']}"], family="shape")
SHUFFLE = LayerSpec(
    "SHUFFLE", (ArgSpec("groups", "int", 2, doc="channel groups interleaved"),),
    doc="channel shuffle (ShuffleNet): channels viewed as groups x (C/groups), transposed",
    rule=shuffle_rule, summary=lambda a: f"{a['groups']}",
    tokens=lambda a: [" ", str(a["groups"])], family="shape")

KINDS = (SPLIT, SHUFFLE)
