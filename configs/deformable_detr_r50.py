# Deformable DETR, ResNet-50, COCO 2017, 50 epochs (paper: 44.5 AP).
_base_ = [
    '_base_/models/deformable_detr_r50.py',
    '_base_/datasets/coco_detection.py',
    '_base_/schedules/schedule_50e.py',
    '_base_/default_runtime.py',
]
