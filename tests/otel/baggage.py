"""What OpenTelemetry Python's W3CBaggagePropagator hands an application (tests/baggage_otel.rs).

Reads cases as JSON on stdin, `[{"headers": [str, ...], "name": str}, ...]`, each header a string
whose characters are the header's bytes (Latin-1, as a WSGI server presents them); writes one
answer per case as JSON: the UTF-8 of `baggage.get_baggage(name)` in hex, or null when absent.
Several headers are given to the propagator as the list a multi-value getter returns.
"""

import json
import logging
import sys

from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

# The propagator logs a warning for every member it drops; the answers say what it kept.
logging.disable(logging.WARNING)

propagator = W3CBaggagePropagator()
answers = []
for case in json.load(sys.stdin):
    carrier = {"baggage": case["headers"]} if case["headers"] else {}
    context = propagator.extract(carrier, context=Context())
    value = baggage.get_baggage(case["name"], context=context)
    answers.append(None if value is None else str(value).encode("utf-8").hex())
json.dump(answers, sys.stdout)
