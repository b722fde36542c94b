# Reads Prometheus text exposition on stdin with the official Python client's
# parser (an implementation independent of prom-client) and prints its samples
# as JSON; a text that does not parse raises, and the exit status is non-zero.
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append({"family": family.name, "type": family.type, "name": sample.name, "labels": sample.labels, "value": sample.value if sample.value == sample.value else None})  # NaN is no JSON
print(json.dumps(samples))
