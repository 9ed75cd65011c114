"""The benchmark scripts run end to end at a tiny size and print their documented last line."""

import os
import re
import subprocess
import sys

from sfda.paths import PROJECT_ROOT


def _last_line(*args):
    # the scripts import the installed sfda (`pip install -e .`); PYTHONPATH makes that this checkout's tree
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_ns_overhead_prints_time_and_memory_ratios():
    line = _last_line("benchmarks/ns_overhead.py", "--iters", "3", "--repeats", "1")
    m = re.fullmatch(r"time_ratio=(\d+\.\d\d) memory_ratio=(\d+\.\d\d) device=(\S+)", line)
    assert m, line
    assert float(m.group(1)) > 0.5 and 0.9 < float(m.group(2)) < 1.5 and m.group(3).startswith("cpu")


def test_data_loading_prints_the_cache_speedup(tmp_path):
    line = _last_line("benchmarks/data_loading.py", "--images", "4", "--size", "320", "240", "--repeats", "1")
    m = re.fullmatch(r"speedup=(\d+\.\d\d)", line)
    assert m and float(m.group(1)) > 0, line


def test_data_loading_digits_mode_prints_the_kept_tensor_speedup():
    line = _last_line("benchmarks/data_loading.py", "--digits", "--images", "8", "--repeats", "1")
    m = re.fullmatch(r"speedup=(\d+\.\d\d)", line)
    assert m and float(m.group(1)) > 1, line  # a list lookup beats ToTensor + Normalize


def test_ddp_overhead_prints_the_overhead_at_world_size_one():
    line = _last_line("benchmarks/ddp_overhead.py", "--iters", "4", "--block", "2", "--repeats", "1")
    m = re.fullmatch(r"overhead=([+-]\d+\.\d\d)% plain=(\d+\.\d) img/s ddp=(\d+\.\d) img/s device=(\S+)", line)
    assert m, line
    assert float(m.group(2)) > 0 and float(m.group(3)) > 0 and m.group(4).startswith("cpu")
