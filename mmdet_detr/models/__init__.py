"""Models of the ``mmdet_detr`` scope; importing this registers them."""
from .assigners.hungarian_assigner import HungarianAssigner
from .assigners.match_costs import (BBoxL1Cost, ClassificationCost,
                                    FocalLossCost, GIoUCost)
from .backbones.torchvision_dilation_resnet import TorchvisionDilationResNet
from .detectors.deformable_detr import DeformableDETR
from .detectors.detr import DETR
from .detectors.dino import DINO
from .heads.deformable_detr_head import DeformableDETRHead
from .heads.detr_head import DETRHead
from .heads.dino_head import DINOHead
from .layers.deformable_decoder import DeformableTransformerDecoder
from .layers.deformable_encoder import DeformableTransformerEncoder
from .layers.dino_decoder import DINOTransformerDecoder
from .layers.ms_deform_attn import MultiScaleDeformableAttention
from .layers.positional_encoding import SinePositionalEncoding
from .layers.transformer_decoder import TransformerDecoder
from .layers.transformer_encoder import TransformerEncoder

__all__ = [
    'BBoxL1Cost', 'ClassificationCost', 'DETR', 'DETRHead', 'DINO',
    'DINOHead', 'DINOTransformerDecoder', 'DeformableDETR',
    'DeformableDETRHead', 'DeformableTransformerDecoder',
    'DeformableTransformerEncoder', 'FocalLossCost', 'GIoUCost',
    'HungarianAssigner', 'MultiScaleDeformableAttention',
    'SinePositionalEncoding', 'TorchvisionDilationResNet',
    'TransformerDecoder', 'TransformerEncoder'
]
