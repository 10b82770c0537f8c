"""Datasets and demo data of the ``mmdet_detr`` scope."""
