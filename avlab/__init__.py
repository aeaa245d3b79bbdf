"""avlab: learning from audio and video together when the two modalities do not cooperate."""
__version__ = "0.1.0"

from avlab.utils import about, get_device, seed_everything  # noqa: E402

__all__ = ["about", "get_device", "seed_everything", "__version__"]
