# DINO for the official IDEA-Research/DINO checkpoints converted by
# tools/convert_checkpoint.py --from official-dino: its input projections
# (the neck) have a convolution bias, and it trained with box noise 0.4
# (dn_box_noise_scale; mmdet's 1.0 moves the corners 2.5 times as far), which
# fine-tuning from these weights keeps.
_base_ = '../dino_4scale_r50_12e.py'
model = dict(neck=dict(bias=True), bbox_head=dict(box_noise_scale=0.4))
