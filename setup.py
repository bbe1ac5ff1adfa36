"""Build qnn_ext._core.

Every C file under csrc/ goes into one extension. Files named *_avx2.c and *_avx512.c are compiled
with their ISA's flags and only called after the runtime's CPU check says the ISA is there, so one
build runs on any x86-64. On other architectures they are left out and the portable code is used.
"""
import os
import platform
import sys
from glob import glob

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")

BASE_FLAGS = ["-std=c11", "-O3", "-Wall", "-Wextra", "-Werror", "-fopenmp",
              # Results must not depend on the ISA level: no FMA contraction, and
              # libm's errno and FP-exception semantics are unused (lets rintf/sqrtf inline and lets
              # branches become selects); neither changes a result.
              "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
              "-fvisibility=hidden"]
ISA_FLAGS = {
    "_ref.c": ["-fno-tree-vectorize", "-fno-tree-slp-vectorize"],
    "_avx2.c": ["-mavx2", "-mfma", "-mf16c", "-mbmi2", "-mpopcnt"],
    "_avx512.c": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq",
                  "-mavx512vnni", "-mavx512vpopcntdq", "-mbmi2", "-mpopcnt",
                  "-mprefer-vector-width=512"],
}

if os.environ.get("QNN_EXT_SANITIZE") == "1":
    BASE_FLAGS += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]


def _sources():
    srcs = sorted(glob(os.path.join("csrc", "**", "*.c"), recursive=True))
    if not IS_X86:
        srcs = [s for s in srcs if not s.endswith(("_avx2.c", "_avx512.c"))]
    return srcs


class BuildExt(build_ext):
    """Compile each ISA file with its own flags (distutils only knows per-extension flags)."""

    def build_extension(self, ext):
        special = {s: f for s in ext.sources for suf, f in ISA_FLAGS.items() if s.endswith(suf)}
        ext.sources = [s for s in ext.sources if s not in special]
        macros = ext.define_macros or []
        objs = []
        for src, flags in special.items():
            objs += self.compiler.compile(
                [src], output_dir=self.build_temp, macros=macros,
                include_dirs=ext.include_dirs, extra_postargs=BASE_FLAGS + flags,
                depends=ext.depends)
        ext.extra_objects = list(ext.extra_objects or []) + objs
        super().build_extension(ext)


link_args = ["-fopenmp"]
if os.environ.get("QNN_EXT_SANITIZE") == "1":
    link_args += ["-fsanitize=address,undefined"]

ext = Extension(
    "qnn_ext._core",
    sources=_sources(),
    include_dirs=[numpy.get_include(), "csrc"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION"),
                   ("QNN_HAVE_X86_ISAS", "1" if IS_X86 else "0")],
    extra_compile_args=BASE_FLAGS,
    extra_link_args=link_args,
    depends=sorted(glob(os.path.join("csrc", "**", "*.h"), recursive=True)),
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
