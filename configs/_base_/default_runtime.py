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
    # Atomic writes (temporary file + rename): a run killed while saving
    # leaves the previous checkpoints intact, never a truncated one.
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Generator states go into each checkpoint, so a resumed run draws the
    # same augmentations as an uninterrupted one.
    rng_state=dict(type='RNGStateHook'),
    # A non-finite loss or gradient stops training with the iteration, the
    # loss terms and the image ids; on_non_finite='skip' drops the step.
    finite_loss=dict(type='FiniteLossHook', on_non_finite='stop'),
    # A checkpoint of another variant (say, box refinement for the plain
    # model) is refused with the settings that differ.
    checkpoint_variant=dict(type='CheckpointVariantHook'),
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
