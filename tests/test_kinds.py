"""Every layer kind is complete: one definition (patternnet/kinds/) with its shape rule,
weights, summary and diagram; a backend function; a NumPy reference that
test_backend_reference.py compares the backend with; a finite-difference case in
test_backend_gradients.py; and its place in docs/language.md's layer reference.

A kind added without one of them fails here, naming what is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("jax")

import reference_numpy as ref  # noqa: E402
from test_backend_gradients import LAYER_CASES  # noqa: E402

from patternnet.backend import LAYER_FNS  # noqa: E402
from patternnet.draw import FAMILIES, draw_svg  # noqa: E402
from patternnet.kinds import ALL, FAMILIES as KIND_FAMILIES  # noqa: E402
from patternnet.layers import LAYERS, NAMES  # noqa: E402
from patternnet.pipeline import check  # noqa: E402
from patternnet.summary import describe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_TESTS = (ROOT / "tests" / "test_backend_reference.py").read_text(encoding="utf-8")
LAYER_DOCS = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")


def _case(kind: str) -> str:
    """The last finite-difference case that runs ``kind`` (for SKIP, one that projects:
    an identity SKIP is drawn as a line, not a box)."""
    for src, _, _ in reversed(LAYER_CASES):
        net = check(src)
        if any(layer.kind == kind for layer in net.layers):
            return src
    raise AssertionError(f"{kind} has no case in test_backend_gradients.LAYER_CASES")


@pytest.mark.parametrize("kind", NAMES)
def test_every_kind_is_complete(kind):
    spec = LAYERS[kind]
    assert spec.name == kind and callable(spec.rule) and callable(spec.weights)
    assert spec.doc, f"{kind} has no reference text (LayerSpec.doc)"
    assert kind in LAYER_FNS, f"{kind} has no backend function (@implements)"
    assert spec.family in KIND_FAMILIES and spec.family in FAMILIES, spec.family
    name = ref.REFERENCES.get(kind)
    assert name and callable(getattr(ref, name, None)), f"{kind} has no NumPy reference"
    assert re.search(rf"\bref\.{name}\b", REFERENCE_TESTS), (
        f"test_backend_reference.py never compares the backend with ref.{name}")
    src = _case(kind)
    net = check(src)
    layer = next(l for l in net.layers if l.kind == kind)
    assert describe(layer).startswith(kind)
    assert spec.title(dict(layer.args))[0] == kind
    assert f'data-kind="{kind}"' in draw_svg(net)
    assert re.search(rf"^### 9\.\d+ .*\b{kind}\b", LAYER_DOCS, re.M), (
        f"docs/language.md §9 has no section naming {kind}")


def test_the_table_is_the_definitions():
    """Names and aliases come from the definitions alone, each once."""
    keys = [k for spec in ALL for k in (spec.name, *spec.aliases)]
    assert len(keys) == len(set(keys))
    assert set(LAYERS) == set(keys) and NAMES == tuple(spec.name for spec in ALL)
    assert set(LAYER_FNS) == set(NAMES)  # no backend function without a definition
