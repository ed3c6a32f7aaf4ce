"""Build step for the one C extension, og_settle._batch_native (everything else is in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "og_settle._batch_native",
            ["src/og_settle/_batch_native.c"],
            extra_compile_args=["-O3", "-pthread"],
            extra_link_args=["-pthread"],
        )
    ]
)
