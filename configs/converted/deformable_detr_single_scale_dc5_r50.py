# The _base_ config with a convolution bias in the input projections (the
# neck), as the official Deformable-DETR and HuggingFace checkpoints have.
# Their weights, converted by tools/convert_checkpoint.py, run with this.
_base_ = '../deformable_detr_single_scale_dc5_r50.py'
model = dict(neck=dict(bias=True))
