"""Side-by-side timing of this project's detector and mmdet 3.3's."""
from .compare import predictions_max_difference, run_benchmark
from .flops import count_flops, format_flops
from .inputs import synthetic_batch
from .mmdet_equivalent import build_model_pair, mmdet_model_config
from .report import format_report

__all__ = [
    'build_model_pair', 'count_flops', 'format_flops', 'format_report',
    'mmdet_model_config', 'predictions_max_difference', 'run_benchmark',
    'synthetic_batch'
]
