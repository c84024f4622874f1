"""Optional compiled pieces of sel4vmm (everything else is in pyproject.toml).

The C extensions under ``src/sel4vmm/native/`` are built when a C compiler and the Python
headers are present; ``optional=True`` makes setuptools warn and carry on without them
otherwise, and ``sel4vmm.native`` then falls back to the pure-Python paths.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "sel4vmm.native._kvmexit",
            ["src/sel4vmm/native/_kvmexit.c"],
            depends=["src/sel4vmm/native/faultslots.h"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "sel4vmm.native._ucmmio",
            ["src/sel4vmm/native/_ucmmio.c"],
            depends=["src/sel4vmm/native/faultslots.h"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "sel4vmm.native._ucmsr",
            ["src/sel4vmm/native/_ucmsr.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
    ]
)
