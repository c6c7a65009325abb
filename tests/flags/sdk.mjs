// The Node flag SDKs, driven offline for tests/flags.rs: JSON cases on stdin, every key's answer
// from the SDK itself on stdout. Nothing here computes a bucket: each answer is what the installed
// SDK returns through its public evaluation API.
//
// Input:  {"keys": [..], "cases": [{"id", "sdk", ...}]}
// Output: {"versions": {package: version}, "answers": {id: [answer per key]}}
//
// sdks:
// - "unleash": unleash-client (Unleash's Node SDK, its own evaluator), bootstrapped from the case's
//   `features` (the client API's format), refreshInterval 0 (never fetches), metrics off:
//   `isEnabled` ("kind": "enabled") or `getVariant` ("kind": "variant") of `toggle` with
//   context {userId: key}.
// - "flagd-v2": @openfeature/flagd-core 4 (integer fractional): `setConfigurations(flags)`,
//   `resolveStringEvaluation(flag, "fallback", {targetingKey: key})`. Answers are the values.
// - "flagd-js-v1": @openfeature/flagd-core 1.3 (float fractional, as the JS SDKs had it), the same.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const { Unleash, InMemStorageProvider } = require('unleash-client');
const { FlagdCore: FlagdCoreV2 } = require('@openfeature/flagd-core');
const { FlagdCore: FlagdCoreV1 } = require('flagd-core-v1');

const PACKAGES = ['unleash-client', '@unleash/client-specification', '@openfeature/flagd-core', 'flagd-core-v1', 'murmurhash3js', 'imurmurhash'];

function installedVersion(name) {
  const here = dirname(new URL(import.meta.url).pathname);
  return JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8')).version;
}

// Errors are thrown, not logged: a case the SDK cannot evaluate must fail the test.
const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

async function unleash(cases, keys) {
  const features = cases.flatMap((c) => c.features);
  const client = new Unleash({
    appName: 'dial-flags',
    url: 'http://127.0.0.1:9/', // never contacted: refreshInterval 0 disables fetching
    refreshInterval: 0,
    disableMetrics: true,
    skipInstanceCountWarning: true,
    storageProvider: new InMemStorageProvider(),
    bootstrap: { data: features },
  });
  client.on('error', (e) => {
    throw e;
  });
  await new Promise((resolve) => client.once('ready', resolve));
  const out = {};
  for (const c of cases) {
    out[c.id] = keys.map((k) =>
      c.kind === 'enabled' ? client.isEnabled(c.toggle, { userId: k }) : client.getVariant(c.toggle, { userId: k }).name,
    );
  }
  client.destroy();
  return out;
}

function flagd(Core, cases, keys) {
  const out = {};
  for (const c of cases) {
    const core = new Core(undefined, silent);
    core.setConfigurations(JSON.stringify({ flags: c.flags }));
    out[c.id] = keys.map((k) => core.resolveStringEvaluation(c.flag, 'fallback', { targetingKey: k }, silent).value);
  }
  return out;
}

const request = JSON.parse(readFileSync(0, 'utf8'));
const bySdk = new Map();
for (const c of request.cases) {
  if (!bySdk.has(c.sdk)) bySdk.set(c.sdk, []);
  bySdk.get(c.sdk).push(c);
}
const answers = {};
for (const [sdk, cases] of bySdk) {
  if (sdk === 'unleash') Object.assign(answers, await unleash(cases, request.keys));
  else if (sdk === 'flagd-v2') Object.assign(answers, flagd(FlagdCoreV2, cases, request.keys));
  else if (sdk === 'flagd-js-v1') Object.assign(answers, flagd(FlagdCoreV1, cases, request.keys));
  else throw new Error(`unknown sdk ${sdk}`);
}
const versions = Object.fromEntries(PACKAGES.map((p) => [p, installedVersion(p)]));
process.stdout.write(JSON.stringify({ versions, answers }));
