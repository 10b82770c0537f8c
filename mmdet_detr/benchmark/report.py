"""The benchmark's figures as a printed table."""
from typing import List

from .compare import MMDET, OURS
from .part_timer import ROWS, TOTALS


def format_report(result: dict) -> str:
    """Times, memory, ratios and the per-part breakdown, as text."""
    models = result['models']
    names = [n for n in (OURS, MMDET) if n in models]
    lines: List[str] = [
        f"{result['config']}: batch {result['batch']} x "
        f"{result['size']}x{result['size']}, {result['device']} "
        f"({result['machine']}), {result['threads']} threads, torch "
        f"{result['torch']}, {result['steps']} timed rounds" +
        (', freed host memory retained (both models)'
         if result.get('retain_freed_memory') else ''),
        '',
        f"{'seconds':28s}" + ''.join(f'{n:>24s}' for n in names) +
        (f"{'mmdet / mmdet_detr':>20s}" if len(names) == 2 else ''),
    ]

    def row(label: str, key: str, ratio_key: str = '') -> str:
        cells = ''.join(
            f"{models[n][key]['median']:10.3f} "
            f"[{models[n][key]['min']:.3f}-{models[n][key]['max']:.3f}]"
            .rjust(24) for n in names)
        ratio = f'{result[ratio_key]:20.2f}x' if ratio_key in result else ''
        return f'{label:28s}{cells}{ratio}'

    lines.append(row('train step median [min-max]', 'train_step',
                     'train_step_speedup'))
    lines.append(row('inference median [min-max]', 'inference',
                     'inference_speedup'))
    lines.append(row('train step CPU s', 'train_step_cpu',
                     'train_step_cpu_speedup'))
    lines.append(row('inference CPU s', 'inference_cpu',
                     'inference_cpu_speedup'))
    for label, key, ratio_key in (
            ('train step peak MiB', 'train_peak_bytes', 'train_memory_ratio'),
            ('inference peak MiB', 'inference_peak_bytes',
             'inference_memory_ratio')):
        cells = ''.join(f'{models[n][key] / 2**20:24.0f}' for n in names)
        ratio = (f'{result[ratio_key]:20.2f} (mmdet_detr / mmdet)'
                 if ratio_key in result else '')
        lines.append(f'{label:28s}{cells}{ratio}')
    lines += ['', 'train step breakdown, median seconds (forward + '
              'backward of each part):']
    for part in ROWS + TOTALS:
        cells = ''.join(f"{models[n]['breakdown'][part]:24.3f}"
                        for n in names)
        ratio = ''
        if len(names) == 2 and models[OURS]['breakdown'][part] > 0:
            ratio = models[MMDET]['breakdown'][part] / \
                models[OURS]['breakdown'][part]
            ratio = f'{ratio:20.2f}x'
        lines.append(f'  {part:26s}{cells}{ratio}')
    if 'predictions_max_difference' in result:
        diff = result['predictions_max_difference']
        equal = diff['scores'] <= 1e-4 and diff['labels'] == 0 and \
            diff['boxes'] <= 1e-4 * result['size']
        lines += ['', f"predictions vs mmdet on the same weights: max |score "
                  f"difference| {diff['scores']:.2e}, max |box difference| "
                  f"{diff['boxes']:.2e} px, {diff['labels']} labels differ: "
                  f"{'EQUAL' if equal else 'DIFFERENT'} to 1e-4"]
    return '\n'.join(lines)
