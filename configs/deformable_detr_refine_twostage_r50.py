# + two-stage: the encoder's top proposals become the queries (paper: 46.9 AP).
_base_ = './deformable_detr_refine_r50.py'
model = dict(as_two_stage=True)
