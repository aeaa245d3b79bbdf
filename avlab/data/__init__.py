"""Datasets. AV-Digits is the embedded default; every dataset yields dicts with `audio`, `visual`, `label`, `index`."""
from avlab.data.avdigits import PRESETS, AVDigits, AVDigitsConfig, DatasetCacheError, load_avdigits, make_config

__all__ = ["PRESETS", "AVDigits", "AVDigitsConfig", "DatasetCacheError", "load_avdigits", "make_config"]
