# Runtime shared by every experiment: scope, hooks, logging, visualization.
# ``default_scope`` makes the Runner resolve each ``type=`` in the registries
# of ``mmdet_detr/registry.py`` first, then in mmdet's and mmengine's.
default_scope = 'mmdet_detr'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Resuming needs the latest checkpoint; three are kept so a run can also
    # step back a little without filling the disk (a DETR-R50 checkpoint with
    # optimizer state is about 0.5 GB).
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Off unless ``tools/test.py --show-dir/--show`` sets ``draw=True``.
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
