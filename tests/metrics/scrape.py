"""Reading ``/metrics`` as Prometheus does: the text format parsed by
prometheus-client's own parser, samples by name and labels."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, dict[frozenset, float]]


def parse(text: str) -> Samples:
    """{sample name: {frozenset(labels.items()): value}}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for key, v in samples.get(name, {}).items() if wanted <= key)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def by_label(samples: Samples, name: str, label: str, **labels: str) -> Mapping[str, float]:
    """``name``'s values (summed) per value of ``label``, among samples with ``labels``."""
    wanted = set(labels.items())
    out: dict[str, float] = {}
    for key, v in samples.get(name, {}).items():
        if wanted <= key:
            found = dict(key).get(label)
            if found is not None:
                out[found] = out.get(found, 0) + v
    return out
