"""Build the optional C kernel of the CPU skip-gram trainer; everything else is declared in pyproject.toml.

The extension is optional: where no C compiler is found, nce_lm installs without it and the skip-gram
trainer uses its torch path on the CPU as well (``nce_lm.skipgram.kernel.available()`` tells which).
"""

import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args: list[str] = ["/O2"]
    link_args: list[str] = []
else:
    compile_args = ["-O3", "-std=c11", "-pthread", "-fno-math-errno"]
    link_args = ["-pthread"]

setup(
    ext_modules=[
        Extension(
            "nce_lm.skipgram._kernel",
            sources=["nce_lm/skipgram/_kernel.c"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            optional=True,
        )
    ]
)
