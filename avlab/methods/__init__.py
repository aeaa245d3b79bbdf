"""Every method of the course. Training-loop plug-ins (see `avlab.methods.base.Method` for the hooks):
OGM-GE, MLB, UMT/UME, Fusion Tuning, Zorro's contrastive loss, G-Blending, AGM, PMR, MMPareto, MMCosine and
Diagnosing & Re-learning; and ABRi, a fix applied to the network before training (`abri.py`)."""
from avlab.methods.abri import (INITS, ABRiBatchNorm2d, apply_abri, build_initialised, initialise_encoder,
                               mixing_weights, reset_bn)
from avlab.methods.agm import AGM, agm_coefficients, agm_score, shapley_logits
from avlab.methods.base import Method, encoder_parameters, in_window, true_class_confidence
from avlab.methods.compose import Compose
from avlab.methods.fusion_tuning import ConfidenceRecorder, FusionTuning, fusion_tuning_ratios, mask_patches
from avlab.methods.gblending import GBlending, blend_weights
from avlab.methods.mlb import MLB, mlb_coefficients
from avlab.methods.mmcosine import CosineFusion, MMCosine, cosine_fusion, cosine_logits
from avlab.methods.mmpareto import MMPareto, min_norm_weights, pareto_gradients, pareto_weights
from avlab.methods.ogm import OGMGE, DiscrepancyMonitor, ogm_coefficients
from avlab.methods.pmr import PMR, compute_prototypes, pmr_terms
from avlab.methods.relearn import Relearn, kmeans, minmax_scale, purity, reinit_strength, soft_reinit
from avlab.methods.registry import MethodEntry, registry
from avlab.methods.umt import UMT, ensemble_accuracy, umt_or_ume
from avlab.methods.zorro_contrastive import ZorroContrastive, info_nce, retrieval_accuracy

__all__ = ["INITS", "ABRiBatchNorm2d", "apply_abri", "build_initialised", "initialise_encoder", "mixing_weights",
           "reset_bn",
           "AGM", "agm_coefficients", "agm_score", "shapley_logits",
           "Method", "encoder_parameters", "in_window", "true_class_confidence",
           "ConfidenceRecorder", "FusionTuning", "fusion_tuning_ratios", "mask_patches",
           "GBlending", "blend_weights",
           "MLB", "mlb_coefficients",
           "CosineFusion", "MMCosine", "cosine_fusion", "cosine_logits",
           "MMPareto", "min_norm_weights", "pareto_gradients", "pareto_weights",
           "OGMGE", "DiscrepancyMonitor", "ogm_coefficients",
           "PMR", "compute_prototypes", "pmr_terms",
           "Relearn", "kmeans", "minmax_scale", "purity", "reinit_strength", "soft_reinit",
           "UMT", "ensemble_accuracy", "umt_or_ume",
           "ZorroContrastive", "info_nce", "retrieval_accuracy",
           "Compose", "MethodEntry", "registry"]
