"""Methods are plug-ins of the one training loop; see `avlab.methods.base.Method` for the hooks."""
from avlab.methods.abri import ABRiBatchNorm2d, apply_abri, mixing_weights, reset_bn
from avlab.methods.base import Method, encoder_parameters, in_window, true_class_confidence
from avlab.methods.compose import Compose
from avlab.methods.registry import MethodEntry, registry
from avlab.methods.fusion_tuning import ConfidenceRecorder, FusionTuning, fusion_tuning_ratios, mask_patches
from avlab.methods.mlb import MLB, mlb_coefficients
from avlab.methods.ogm import OGMGE, DiscrepancyMonitor, ogm_coefficients
from avlab.methods.umt import UMT, ensemble_accuracy, umt_or_ume
from avlab.methods.zorro_contrastive import ZorroContrastive, info_nce, retrieval_accuracy

__all__ = ["ABRiBatchNorm2d", "apply_abri", "mixing_weights", "reset_bn", "Method", "encoder_parameters", "in_window", "true_class_confidence", "ConfidenceRecorder",
           "FusionTuning", "fusion_tuning_ratios", "mask_patches", "MLB", "mlb_coefficients", "OGMGE",
           "DiscrepancyMonitor", "ogm_coefficients", "UMT", "ensemble_accuracy", "umt_or_ume", "ZorroContrastive",
           "info_nce", "retrieval_accuracy"]
__all__ += ["Compose", "MethodEntry", "registry"]
