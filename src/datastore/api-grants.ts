// One Kubernetes API permission a component of tortie needs, with the code that needs it: the agent's
// (src/agent/api-calls.ts) and the CNI plugin's (src/cni/api-calls.ts) lists, which manifests/tortie.yaml
// grants to their ServiceAccounts exactly (test/unit/manifests.test.ts).

export interface ApiGrant {
  verb: string;
  /** `pods`, `pods/status`, `serviceaccounts/token`, or `<plural>.<group>`. */
  resource: string;
  /** Granted by a Role in the component's namespace, not cluster-wide. */
  namespaced?: boolean;
  /** Only these object names (RBAC resourceNames). */
  resourceNames?: readonly string[];
  /** Where the code needs it (a regular expression matched against the component's sources). */
  uses: RegExp;
  why: string;
}
