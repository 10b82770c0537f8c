"""Kernels: multi-scale deformable attention on CPU and CUDA."""
from .dropout_func import (Dropout, ReLUDropout, ResidualDropout, dropout,
                           dropout_add, relu_dropout)
from .ms_deform_attn_func import (MultiScaleDeformableAttnCPUFunction,
                                  cpu_kernel_available,
                                  multi_scale_deformable_attn)
from .ms_deform_attn_pytorch import ms_deform_attn_pytorch

__all__ = [
    'Dropout', 'MultiScaleDeformableAttnCPUFunction', 'ReLUDropout',
    'ResidualDropout', 'cpu_kernel_available', 'dropout', 'dropout_add',
    'ms_deform_attn_pytorch', 'multi_scale_deformable_attn', 'relu_dropout'
]
