// What tests/istio/check_manifests.mjs and tests/gateway/check_manifests.mjs share: how a
// problem is located in a manifest ("$.spec.rules[0]", the JSON-path style of Dial's own policy
// errors) and worded from a JSON-schema validator's error. Plain functions, no dependency.

export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** The path of `key` (a field name or an array index) under path `p`. */
export const child = (p, key) => (typeof key === "number" ? `${p}[${key}]` : `${p}.${key}`);

export function die(message) {
  console.error(message);
  process.exit(2);
}

/** A validator's instance path ("/spec/http/0/route") as "$.spec.http[0].route", and the value there. */
export function pointer(doc, instancePath) {
  let at = "$";
  let value = doc;
  for (const raw of instancePath.split("/").slice(1)) {
    const part = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    const key = Array.isArray(value) && /^\d+$/.test(part) ? Number(part) : part;
    at = child(at, key);
    value = value?.[key];
  }
  return { at, value };
}

/** One validator error as "path: message", with the offending value quoted. */
export function describe(doc, err) {
  const { at, value } = pointer(doc, err.instancePath);
  const shown = JSON.stringify(value);
  switch (err.keyword) {
    case "required":
      return `${child(at, err.params.missingProperty)}: required`;
    case "enum":
      return `${at}: ${shown} is not one of ${err.params.allowedValues.join(", ")}`;
    case "pattern":
      return `${at}: ${shown} does not match ${err.params.pattern}`;
    case "type":
      return `${at}: ${shown} is not of type ${err.params.type}`;
    default:
      return `${at}: ${err.message ?? err.keyword} ${JSON.stringify(err.params)}`;
  }
}
