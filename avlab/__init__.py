"""avlab: learning from audio and video together when the two modalities do not cooperate."""
__version__ = "0.1.0"  # = pyproject.toml's version (tests/test_course.py fails when they differ)

from avlab.utils import about, get_device, seed_everything  # noqa: E402

__all__ = ["about", "get_device", "seed_everything", "__version__"]


def __getattr__(name):
    # Submodules on first use (`avlab.course.headline(...)` after a plain `import avlab`), without importing
    # them all up front, which would also upset `python -m avlab.course`.
    import importlib

    if name in {"cli", "course", "data", "diagnostics", "distributed", "evaluation", "experiment", "methods", "models",
                "plots", "train", "utils", "weights"}:
        return importlib.import_module(f"avlab.{name}")
    raise AttributeError(f"module 'avlab' has no attribute {name!r}")
