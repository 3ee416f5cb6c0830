"""Latency measurement (torch only: runs where mmcv/mmdet are not installed)."""
from .measure import (count_flops, machine_info, matmul_gflops, measure, measure_interleaved,
                      summarize)

__all__ = ['measure', 'measure_interleaved', 'summarize', 'count_flops', 'machine_info',
           'matmul_gflops']
