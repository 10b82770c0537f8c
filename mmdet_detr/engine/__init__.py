"""Runner-side pieces (hooks) of the ``mmdet_detr`` scope."""
