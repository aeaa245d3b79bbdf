"""Methods are plug-ins of the one training loop; see `avlab.methods.base.Method` for the hooks."""
from avlab.methods.base import Method, encoder_parameters

__all__ = ["Method", "encoder_parameters"]
