"""``ClassIoUMetric``: mmseg's ``IoUMetric`` that also returns each class's IoU.

mmseg prints the per-class table to the log only; returned as ``IoU.<class>``
entries, the per-class IoUs reach the logged scalars, the message hub (a learning
curve per class) and callers of ``runner.test()`` -- which is what tells a model
that finds the shapes apart from one that also names them. Classes absent from
both the predictions and the labels (IoU undefined) are left out, so an ADE20K
subset reports its own classes only.
"""
from typing import Dict

from mmseg.evaluation import IoUMetric


class ClassIoUMetric(IoUMetric):

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        intersection, union = (sum(areas).numpy() for areas in list(zip(*results))[:2])
        for name, inter, total in zip(self.dataset_meta['classes'], intersection, union):
            if total > 0:
                metrics[f'IoU.{name}'] = round(float(inter / total) * 100, 2)
        return metrics
