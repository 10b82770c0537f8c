"""Models of the ``mmdet_detr`` scope; importing this registers them."""
from .assigners.hungarian_assigner import HungarianAssigner
from .assigners.match_costs import (BBoxL1Cost, ClassificationCost,
                                    FocalLossCost, GIoUCost)
from .detectors.deformable_detr import DeformableDETR
from .heads.deformable_detr_head import DeformableDETRHead
from .layers.deformable_decoder import DeformableTransformerDecoder
from .layers.deformable_encoder import DeformableTransformerEncoder
from .layers.ms_deform_attn import MultiScaleDeformableAttention
from .layers.positional_encoding import SinePositionalEncoding

__all__ = [
    'BBoxL1Cost', 'ClassificationCost', 'DeformableDETR',
    'DeformableDETRHead', 'DeformableTransformerDecoder',
    'DeformableTransformerEncoder', 'FocalLossCost', 'GIoUCost',
    'HungarianAssigner', 'MultiScaleDeformableAttention',
    'SinePositionalEncoding'
]
