// Envoy Gateway's dynamic-module fields (Envoy Gateway v1.8 and later), which
// @kubernetes-models/envoy-gateway 2.0.0 predates: its EnvoyProxySpec has no `dynamicModules` and
// its EnvoyExtensionPolicySpec no `dynamicModule`. Written here from Envoy Gateway's own API
// (api/v1alpha1/dynamic_module_types.go: DynamicModuleEntry, DynamicModuleSource,
// LocalDynamicModuleSource, RemoteDynamicModuleSource, DynamicModule; and the two fields of
// envoyproxy_types.go and envoyextensionypolicy_types.go), field for field, with the json names.
// check_manifests.mjs adds them to the package's EnvoyProxy and EnvoyExtensionPolicy, and checks
// the constraints the Go types carry as kubebuilder markers (patterns, lengths, the Local/Remote
// union's CEL rules) itself: see DYNAMIC_MODULE_RULES there.

/** EnvoyProxy.spec.dynamicModules[]: a module the proxy loads, which policies may then use. */
export interface DynamicModuleEntry {
  /** Pattern ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$, 1 to 253 characters. */
  name: string;
  source: DynamicModuleSource;
  /** Default false. */
  doNotClose?: boolean;
  /** Default false. */
  loadGlobally?: boolean;
}

/** Exactly the member `type` names is set (type defaults to Local). */
export interface DynamicModuleSource {
  type?: "Local" | "Remote";
  local?: LocalDynamicModuleSource;
  remote?: RemoteDynamicModuleSource;
}

export interface LocalDynamicModuleSource {
  /** An absolute path to the shared library, 1 to 4096 characters. */
  path: string;
}

export interface RemoteDynamicModuleSource {
  /** Pattern ^https?://[^/?#]+(?:[/?#].*)?$, 1 to 4096 characters. */
  url: string;
  /** Pattern ^[a-f0-9]{64}$. */
  sha256: string;
}

/** EnvoyExtensionPolicy.spec.dynamicModule[] (at most 16): a registered module's HTTP filter. */
export interface DynamicModule {
  /** A name in the EnvoyProxy's dynamicModules; the same pattern and length as there. */
  name: string;
  /** At most 253 characters. */
  filterName?: string;
  /** Any JSON (apiextensions.k8s.io/v1 JSON): handed to the module as its JSON text. */
  config?: unknown;
  /** Default false. */
  terminalFilter?: boolean;
}

export interface EnvoyProxyDynamicModules {
  spec: { dynamicModules?: Array<DynamicModuleEntry> };
}

export interface EnvoyExtensionPolicyDynamicModules {
  spec: { dynamicModule?: Array<DynamicModule> };
}
