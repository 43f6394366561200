"""Parses many expositions with the reference Python parsers in one process.

stdin: documents, each as `<format> <byte length>\n<bytes>`, where format is `openmetrics`
(prometheus_client.openmetrics.parser, strict: any deviation from the OpenMetrics 1.0
grammar raises) or `text` (prometheus_client.parser). stdout: one line per document,
`ok <samples>` or `error <message>`.
"""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text


def main():
    data = sys.stdin.buffer
    out = sys.stdout
    while True:
        header = data.readline()
        if not header:
            break
        kind, length = header.decode().split()
        text = data.read(int(length)).decode("utf-8")
        parse = parse_openmetrics if kind == "openmetrics" else parse_text
        try:
            n = sum(len(f.samples) for f in parse(text))
            out.write(f"ok {n}\n")
        except Exception as e:  # the parser's own exceptions are the verdict
            message = str(e).replace("\n", " ")[:500]
            out.write(f"error {type(e).__name__}: {message}\n")
    out.flush()


if __name__ == "__main__":
    main()
