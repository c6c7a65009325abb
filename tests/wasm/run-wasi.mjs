// Runs a wasm32-wasip1 test binary (cargo's libtest harness) under Node's built-in WASI, so the
// pure core's unit tests run on the very target Envoy loads. Cargo calls this as the target's
// runner: `node run-wasi.mjs <test.wasm> [libtest args...]`.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [, , wasmPath, ...args] = argv;
if (!wasmPath) {
  console.error("usage: run-wasi.mjs <module.wasm> [args...]");
  exit(2);
}
const wasi = new WASI({
  version: "preview1",
  args: [wasmPath, ...args],
  env: { RUST_BACKTRACE: env.RUST_BACKTRACE ?? "0" },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
try {
  exit(wasi.start(instance) ?? 0);
} catch (e) {
  // A panic aborts (wasm has no unwinding): the trap surfaces here and the run fails.
  console.error(`wasm test binary trapped: ${e}`);
  exit(101);
}
