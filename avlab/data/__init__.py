"""Datasets. AV-Digits is the embedded default; every dataset yields dicts with `audio`, `visual`, `label`, `index`."""
from avlab.data.avdigits import PRESETS, AVDigits, AVDigitsConfig, DatasetCacheError, load_avdigits, make_config
from avlab.data.realdata import AVE, REAL_DATASETS, UCF101, ClipDataset, CremaD, KineticsSounds, VGGSound, load_real  # noqa: E501,F401

__all__ = ["PRESETS", "AVDigits", "AVDigitsConfig", "DatasetCacheError", "load_avdigits", "make_config"]
