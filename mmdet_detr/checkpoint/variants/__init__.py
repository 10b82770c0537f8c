"""Per detector, the variants a checkpoint can hold, what tells them apart,
and the config of this project that runs each: ``deformable_detr.py``,
``detr.py``, ``dino.py``. Each module has the same shape: ``Variant``,
``VARIANTS``, ``CONFIGS`` and ``variant_name``."""
