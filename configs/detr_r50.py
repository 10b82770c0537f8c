# DETR, ResNet-50, COCO 2017, 500 epochs (paper: 42.0 AP). The training
# augmentation of the dataset base (flip, multi-scale resize, random crop) is
# DETR's; the schedule is the paper's (schedules/schedule_500e.py).
_base_ = [
    '_base_/models/detr_r50.py',
    '_base_/datasets/coco_detection.py',
    '_base_/schedules/schedule_500e.py',
    '_base_/default_runtime.py',
]
