// What OpenTelemetry JS's W3CBaggagePropagator (@opentelemetry/core) hands an application
// (tests/baggage_otel.rs). Reads cases as JSON on stdin, [{"headers": [string, ...], "name":
// string}, ...], each header a string whose characters are the header's bytes (Latin-1, as
// Node's HTTP server presents them); writes one answer per case as JSON: the UTF-8 of the
// entry's value in hex, or null when absent. Several headers are given as Node gives an array.
import { readFileSync } from "node:fs";
import { ROOT_CONTEXT, defaultTextMapGetter, propagation } from "@opentelemetry/api";
import { W3CBaggagePropagator } from "@opentelemetry/core";

const propagator = new W3CBaggagePropagator();
const answers = JSON.parse(readFileSync(0, "utf8")).map(({ headers, name }) => {
  const carrier = headers.length === 0 ? {} : { baggage: headers.length === 1 ? headers[0] : headers };
  const context = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
  const entry = propagation.getBaggage(context)?.getEntry(name);
  return entry === undefined ? null : Buffer.from(entry.value, "utf8").toString("hex");
});
process.stdout.write(JSON.stringify(answers));
