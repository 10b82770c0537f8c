"""DETR and Deformable DETR for the OpenMMLab ecosystem (scope ``mmdet_detr``)."""
__version__ = '0.1.0'
