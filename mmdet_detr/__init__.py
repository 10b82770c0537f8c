"""DETR and Deformable DETR for the OpenMMLab ecosystem (scope
``mmdet_detr``)."""
from .env_check import check_install

__version__ = '0.1.0'

# Package metadata only, no import of torch or mmcv: a broken installation
# (an mmcv mmdet refuses, mmcv without its compiled ops, ...) stops here
# with the command that fixes it. tools/check_env.py runs the full checks.
check_install()
