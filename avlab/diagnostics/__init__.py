"""Measuring instruments, not methods: per-modality accuracy, linear probes and Shapley contributions
(`probes.py`), and the dead BatchNorm-channel meter of chapter 04 (`dead_channels.py`)."""
from avlab.diagnostics.probes import (features, fit_linear_probe, linear_probe, shapley, uni_modal_accuracy,
                                      zeroed_accuracy)

__all__ = ["features", "fit_linear_probe", "linear_probe", "shapley", "uni_modal_accuracy", "zeroed_accuracy"]
