"""Encoders, fusion modules and the audio-visual classifier."""
from avlab.models.classifier import MODALITIES, AVClassifier
from avlab.models.encoders import AudioEncoder, VisualEncoder
from avlab.models.fusion import FUSIONS, make_fusion
from avlab.models.resnet import ResNet18, init_weights
from avlab.models.zorro import AVTransformer, build_transformer, zorro_mask

__all__ = ["MODALITIES", "AVClassifier", "AudioEncoder", "VisualEncoder", "FUSIONS", "make_fusion", "ResNet18",
           "init_weights", "AVTransformer", "build_transformer", "zorro_mask"]
