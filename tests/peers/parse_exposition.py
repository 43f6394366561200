"""Parses an exposition from stdin with the reference Python parsers and prints every
sample as one JSON object per line: {"family", "type", "unit", "name", "labels", "value"}.

usage: parse_exposition.py openmetrics|text

`openmetrics` uses prometheus_client.openmetrics.parser, which is strict: any deviation
from the OpenMetrics 1.0 grammar raises, and the process exits non-zero.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text


def main():
    kind = sys.argv[1]
    data = sys.stdin.read()
    parse = parse_openmetrics if kind == "openmetrics" else parse_text
    for family in parse(data):
        for s in family.samples:
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "unit": family.unit,
                "name": s.name,
                "labels": s.labels,
                "value": s.value,
                "exemplar": None if getattr(s, "exemplar", None) is None else {
                    "labels": s.exemplar.labels,
                    "value": s.exemplar.value,
                    "timestamp": None if s.exemplar.timestamp is None else float(s.exemplar.timestamp),
                },
            }))


if __name__ == "__main__":
    main()
