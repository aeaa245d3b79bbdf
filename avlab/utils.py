"""Devices, seeds, paths and versions: the small things every other module needs."""
from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def get_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` picks CUDA, then Apple's MPS, then the CPU; anything else is passed to torch.device."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; on the CPU, runs are then bit-for-bit repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def in_clone() -> bool:
    """True when avlab runs from a git checkout (editable or source install), not from an installed wheel."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / ".git").exists()  # .git: a file in a worktree


def data_location() -> tuple[Path, str]:
    """Where avlab keeps generated datasets and caches, and why there: `$AVLAB_DATA`; else `data/` of the clone
    avlab runs from (a git checkout with pyproject.toml beside the package: an editable or source install);
    else the user's cache folder. Never inside site-packages: an installed wheel must not write into itself."""
    if os.environ.get("AVLAB_DATA"):
        return Path(os.environ["AVLAB_DATA"]).expanduser(), "from $AVLAB_DATA"
    if in_clone():
        return REPO_ROOT / "data", "the clone's data folder"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("avlab")), "the user's cache folder"


def data_dir() -> Path:
    """The folder of `data_location()`, created if missing."""
    path = data_location()[0]
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict:
    import torchaudio
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchaudio": torchaudio.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def about() -> None:
    """Print versions, the device avlab will use and the data folder: the first cell of every chapter."""
    from avlab import __version__

    folder, why = data_location()
    info = {"avlab": __version__, **versions(), "device": str(get_device()), "data": f"{folder}  ({why})",
            "threads": torch.get_num_threads()}
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:>{width}}  {value}")
