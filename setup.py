"""Build step for the C extensions, og_settle._batch_native and og_settle._intake_native (everything else is in
pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "og_settle._batch_native",
            ["src/og_settle/_batch_native.c"],
            extra_compile_args=["-O3", "-pthread"],
            extra_link_args=["-pthread"],
            depends=["src/og_settle/_native_common.h"],
        ),
        Extension(
            "og_settle._intake_native",
            ["src/og_settle/_intake_native.c"],
            extra_compile_args=["-O3"],
            depends=["src/og_settle/_native_common.h"],
        ),
    ]
)
