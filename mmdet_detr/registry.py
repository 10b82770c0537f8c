"""Registries of the ``mmdet_detr`` scope.

Each registry is a child of mmdet's registry of the same kind, so a config with
``default_scope = 'mmdet_detr'`` resolves this project's components first and
falls back to mmdet's (``ResNet``, ``ChannelMapper``, ``CocoDataset``,
transforms, ``CocoMetric``, ``DetDataPreprocessor``, losses) and then to
mmengine's. Every registry the mmengine ``Runner`` touches has a child here:
a missing one would make the Runner fall back to the root registry, where
mmdet's components are not visible.
"""
from mmdet import registry as mmdet_registry
from mmengine.registry import Registry

_SCOPE = 'mmdet_detr'


def _child(name: str, parent: Registry, location: str,
           mmdet_location: str) -> Registry:
    # Locations are imported the first time the registry is searched, so a
    # config resolves names without importing anything by hand. A child's
    # search falls back to its parent's entries but does not import the
    # parent's locations, hence mmdet's module is listed here too.
    return Registry(
        name,
        parent=parent,
        scope=_SCOPE,
        locations=[location, mmdet_location])


RUNNERS = _child('runner', mmdet_registry.RUNNERS, 'mmdet_detr.engine',
                 'mmdet.engine.runner')
RUNNER_CONSTRUCTORS = _child('runner constructor',
                             mmdet_registry.RUNNER_CONSTRUCTORS,
                             'mmdet_detr.engine', 'mmdet.engine.runner')
LOOPS = _child('loop', mmdet_registry.LOOPS, 'mmdet_detr.engine',
               'mmdet.engine.runner')
HOOKS = _child('hook', mmdet_registry.HOOKS, 'mmdet_detr.engine',
               'mmdet.engine.hooks')
DATASETS = _child('dataset', mmdet_registry.DATASETS, 'mmdet_detr.datasets',
                  'mmdet.datasets')
DATA_SAMPLERS = _child('data sampler', mmdet_registry.DATA_SAMPLERS,
                       'mmdet_detr.datasets', 'mmdet.datasets.samplers')
TRANSFORMS = _child('transform', mmdet_registry.TRANSFORMS,
                    'mmdet_detr.datasets', 'mmdet.datasets.transforms')
MODELS = _child('model', mmdet_registry.MODELS, 'mmdet_detr.models',
                'mmdet.models')
MODEL_WRAPPERS = _child('model_wrapper', mmdet_registry.MODEL_WRAPPERS,
                        'mmdet_detr.models', 'mmdet.models')
WEIGHT_INITIALIZERS = _child('weight initializer',
                             mmdet_registry.WEIGHT_INITIALIZERS,
                             'mmdet_detr.models', 'mmdet.models')
OPTIMIZERS = _child('optimizer', mmdet_registry.OPTIMIZERS,
                    'mmdet_detr.engine', 'mmdet.engine.optimizers')
OPTIM_WRAPPERS = _child('optim_wrapper', mmdet_registry.OPTIM_WRAPPERS,
                        'mmdet_detr.engine', 'mmdet.engine.optimizers')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer constructor',
                                    mmdet_registry.OPTIM_WRAPPER_CONSTRUCTORS,
                                    'mmdet_detr.engine',
                                    'mmdet.engine.optimizers')
PARAM_SCHEDULERS = _child('parameter scheduler',
                          mmdet_registry.PARAM_SCHEDULERS, 'mmdet_detr.engine',
                          'mmdet.engine.schedulers')
METRICS = _child('metric', mmdet_registry.METRICS, 'mmdet_detr.engine',
                 'mmdet.evaluation')
EVALUATOR = _child('evaluator', mmdet_registry.EVALUATOR, 'mmdet_detr.engine',
                   'mmdet.evaluation')
TASK_UTILS = _child('task util', mmdet_registry.TASK_UTILS,
                    'mmdet_detr.models', 'mmdet.models')
VISUALIZERS = _child('visualizer', mmdet_registry.VISUALIZERS,
                     'mmdet_detr.engine', 'mmdet.visualization')
VISBACKENDS = _child('vis_backend', mmdet_registry.VISBACKENDS,
                     'mmdet_detr.engine', 'mmdet.visualization')
LOG_PROCESSORS = _child('log_processor', mmdet_registry.LOG_PROCESSORS,
                        'mmdet_detr.engine', 'mmdet.engine')
