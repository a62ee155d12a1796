"""A model's train.py imported as a module, for what reuses its data and helpers (the drift
evaluation's sources, the tests): one loader, so every caller gets the same isolation."""

import importlib.util
import sys
from pathlib import Path


def load_train(model_dir: Path, name: str):
    """Import model_dir/train.py as `name`, leaving sys.path and sys.modules as they were.

    train.py puts its own folders on sys.path; they are taken off again. Modules named like the
    folder's files (every model has a `model`) are set aside first, so that train.py imports its own
    and not another model's, and put back after, so that the caller's own `model` is untouched.
    """
    saved_path = list(sys.path)
    stems = [py.stem for py in model_dir.glob("*.py")]
    saved_modules = {stem: sys.modules.pop(stem) for stem in stems if stem in sys.modules}
    try:
        spec = importlib.util.spec_from_file_location(name, model_dir / "train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        for stem in stems:
            sys.modules.pop(stem, None)
        sys.modules.update(saved_modules)
    return module
