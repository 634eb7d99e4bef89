"""Builds PatternNet's oneDNN convolution for XLA:CPU while the wheel is built
(``pip install .`` and ``pip install -e .`` alike): a hatchling build hook.

The source is patternnet/backend/native/onednn_conv.cc; the library it makes,
patternnet/backend/native/_onednn_conv.so, is not in git (it is a build artifact) and
patternnet/backend/onednn.py loads it at run time.  The build needs a C++17 compiler
(``$CXX``, else ``c++``), the XLA FFI headers that jaxlib ships and oneDNN's headers and
library (the ``onednn-devel-cpu-gomp`` wheel), both build requirements in pyproject.toml
on Linux x86-64.  No ``-march``: oneDNN chooses its kernels for the CPU it runs on, so
one build serves AVX2 and AVX-512 machines alike.

``PATTERNNET_BUILD_ONEDNN``: ``auto`` (default) builds where it can and otherwise warns
and goes on (PatternNet then uses XLA's convolution); ``require`` fails the install if
the build fails; ``skip`` does not build.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NATIVE = Path("patternnet") / "backend" / "native"
SOURCE = NATIVE / "onednn_conv.cc"
LIBRARY = NATIVE / "_onednn_conv.so"
MODES = ("auto", "require", "skip")


class BuildError(Exception):
    pass


def _supported() -> str | None:
    """Why this platform gets no build, or None."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return (f"oneDNN's wheel exists for Linux x86-64 only, not {sys.platform} "
                f"{platform.machine()}")
    return None


def _jaxlib_include() -> Path:
    spec = importlib.util.find_spec("jaxlib")   # no import: jaxlib's C extension is large
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("jaxlib is not installed in the build environment (its XLA FFI headers)")
    include = Path(list(spec.submodule_search_locations)[0]) / "include"
    if not (include / "xla" / "ffi" / "api" / "ffi.h").is_file():
        raise BuildError(f"no XLA FFI headers under {include}")
    return include


def _onednn_dirs() -> tuple[Path, Path]:
    """oneDNN's include and lib folders, from the installed files of its wheels."""
    try:
        devel = importlib.metadata.distribution("onednn-devel-cpu-gomp")
        lib = importlib.metadata.distribution("onednn-cpu-gomp")
    except importlib.metadata.PackageNotFoundError as e:
        raise BuildError(f"{e.name} is not installed in the build environment") from None
    header = next((devel.locate_file(f) for f in devel.files or ()
                   if str(f).endswith("oneapi/dnnl/dnnl.hpp")), None)
    shared = next((lib.locate_file(f) for f in lib.files or ()
                   if str(f).endswith("libdnnl.so.3")), None)
    if header is None or shared is None:
        raise BuildError("oneDNN's wheels lack dnnl.hpp or libdnnl.so.3")
    return Path(header).resolve().parents[2], Path(shared).resolve().parent


def build(root: Path) -> Path:
    """Compiles the library into the source tree; returns its path."""
    why = _supported()
    if why:
        raise BuildError(why)
    source, out = root / SOURCE, root / LIBRARY
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    include, libdir = _onednn_dirs()
    # pip runs the hook twice (metadata, then the wheel): build once per source, jaxlib
    # and oneDNN version
    stamp = out.with_name(out.name + ".stamp")
    key = " ".join([sha, importlib.metadata.version("jaxlib"),
                    importlib.metadata.version("onednn-cpu-gomp"), os.environ.get("CXX", "")])
    if out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return out
    cxx = shlex.split(os.environ.get("CXX", "c++"))
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    cmd = [*cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden",
           f"-DPATTERNNET_SOURCE_SHA=\"{sha}\"", f"-I{_jaxlib_include()}", f"-I{include}",
           str(source), f"-L{libdir}", "-l:libdnnl.so.3", "-o", str(tmp)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"cannot run the C++ compiler {cxx[0]!r}: {e}") from None
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{shlex.join(cmd)} failed:\n{done.stderr[-4000:]}")
    os.replace(tmp, out)     # atomic: a failed build never leaves half a library
    stamp.write_text(key)
    return out


class OneDNNBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        mode = os.environ.get("PATTERNNET_BUILD_ONEDNN", "auto").strip().lower() or "auto"
        if mode not in MODES:
            raise ValueError(f"PATTERNNET_BUILD_ONEDNN={mode!r}: use one of {', '.join(MODES)}")
        if mode == "skip":
            return
        try:
            build(Path(self.root))
        except BuildError as e:
            if mode == "require":
                raise
            print(f"patternnet: oneDNN convolution not built ({e}); PatternNet will use "
                  "XLA's convolution on the CPU (docs/backend.md §5b)", file=sys.stderr)
            return
        build_data["pure_python"] = False     # a platform wheel: it holds a shared library
        build_data["infer_tag"] = True
