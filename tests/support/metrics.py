"""Reading a Prometheus exposition in tests: every sample, by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
"""A sample's name and its labels, sorted."""

Samples = dict[SampleKey, float]
"""Every sample of one scrape."""


def parseSamples(text: str) -> Samples:
    """Read an exposition with ``prometheus_client``'s own parser.

    :param text: what ``/metrics`` answered.
    :returns: every sample's value, by name and sorted labels.
    """
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples
