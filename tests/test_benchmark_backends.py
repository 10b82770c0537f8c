"""The backend comparison of ``tools/benchmark.py --compare-backends`` on a
tiny model: every backend row is present and timed, and each ratio is
mmdet's median over the row's. Structure only: timings are the machine's."""
import pytest

from mmdet_detr.benchmark.backends import (BACKEND_ROWS, NAME_WIDTH, REFERENCE,
                                           format_backend_comparison,
                                           run_backend_comparison,
                                           time_interleaved)

TINY = 'tests/configs/tiny_deformable_detr.py'


def test_time_interleaved_runs_each_backend_once_a_round():
    calls = []
    runs = {name: (lambda n=name: calls.append(n)) for name in 'abc'}
    times = time_interleaved(runs, steps=2, log=lambda line: None)
    assert calls == list('abc') * 3  # a warm-up round and two timed
    assert {name: len(values) for name, values in times.items()} == {
        'a': 2, 'b': 2, 'c': 2}


def test_backend_comparison_on_a_tiny_model():
    result = run_backend_comparison(TINY, size=64, batch=2, steps=1,
                                    threads=1, log=lambda line: None)
    rows = result['backends']
    assert list(rows) == list(BACKEND_ROWS)
    reference = rows[REFERENCE]['median']
    for name, row in rows.items():
        assert row['n'] == 1 and row['min'] <= row['median'] <= row['max']
        assert row['median'] > 0
        assert row['speedup'] == pytest.approx(reference / row['median'])
    assert rows[REFERENCE]['speedup'] == 1.0
    table = format_backend_comparison(result)
    for name, row in rows.items():
        assert f"{name:{NAME_WIDTH}s}{row['median']:10.3f}" in table
        assert f"{row['speedup']:9.2f}x" in table
    with pytest.raises(ValueError, match='--steps 0'):
        run_backend_comparison(TINY, size=64, steps=0)
