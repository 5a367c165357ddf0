"""The Prometheus text of one app's figures, built at scrape time.

The families, names, help texts, types and labels are those ``prometheus_client``'s own
``Counter``, ``Histogram`` and ``Gauge`` would expose (``_total``, ``_created``,
``_bucket``/``_count``/``_sum``), built here from the plain counts ``metrics`` keeps.
Only this module imports ``prometheus_client``, and only ``Metrics.render`` imports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

#: (name, help, label names, figures): figures are a counter (``metrics.Counts``), a
#: histogram (``metrics.Buckets``), a gauge per label value (a mapping) or one gauge
Family = tuple[str, str, Sequence[str], Any]


def exposition(families: Sequence[Family], constant: Mapping[str, str]
               ) -> tuple[bytes, str]:
    """The text exposition of ``families``, every sample also labelled ``constant``, and
    its content type."""
    registry = CollectorRegistry()
    registry.register(_Families(families, constant))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Families(Collector):
    def __init__(self, families: Sequence[Family], constant: Mapping[str, str]) -> None:
        self.families, self.constant = families, constant

    def collect(self) -> Iterator[Metric]:
        for name, doc, names, figures in self.families:
            if hasattr(figures, "created"):
                family = _counter(name, doc, names, figures)
            elif hasattr(figures, "bounds"):
                family = _histogram(name, doc, names, figures)
            else:
                family = Metric(name, doc, "gauge")
                values = figures if isinstance(figures, Mapping) else {(): figures}
                for key, value in values.items():
                    family.add_sample(name, _labels(names, key), float(value))
            family.samples = [s._replace(labels={**s.labels, **self.constant})
                              for s in family.samples]
            yield family


def _labels(names: Sequence[str], key: object) -> dict[str, str]:
    values = key if isinstance(key, tuple) else (key,)
    return {name: str(value) for name, value in zip(names, values)}


def _counter(name: str, doc: str, names: Sequence[str], counts: Any) -> Metric:
    family = Metric(name, doc, "counter")
    for key, count in counts.items():
        labels = _labels(names, key)
        family.add_sample(name + "_total", labels, float(count))
        family.add_sample(name + "_created", labels, counts.created[key])
    return family


def _histogram(name: str, doc: str, names: Sequence[str], buckets: Any) -> Metric:
    family = Metric(name, doc, "histogram")
    for key, (counts, total, created) in buckets.series.items():
        labels = _labels(names, key)
        cumulative = 0
        for bound, count in zip(buckets.bounds, counts):
            cumulative += count
            family.add_sample(name + "_bucket", {**labels, "le": floatToGoString(bound)},
                              float(cumulative))
        family.add_sample(name + "_count", labels, float(cumulative))
        family.add_sample(name + "_sum", labels, total)
        family.add_sample(name + "_created", labels, created)
    return family
