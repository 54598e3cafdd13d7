// TokenRequest (POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token): a bound token of a
// ServiceAccount, asked for with the kubeconfig's own credentials. Used for the CNI plugin's kubeconfig by
// `tortie cni install` (the first token) and the agent (src/agent/cni-token.ts, every next one).

export interface IssuedToken {
  token: string;
  /** When the API server says it expires (ms since the epoch). */
  expiresAt: number;
}

/** Asks the API server for a token of one ServiceAccount, valid `expirationSeconds` (the server may change that). */
export type TokenRequester = (expirationSeconds: number) => Promise<IssuedToken>;

/** The one call: client-node's CoreV1Api.createNamespacedServiceAccountToken (TokenRequest). */
export async function kubeTokenRequester(
  kubeconfig: string | undefined,
  timeoutMs: number,
  namespace: string,
  serviceAccount: string,
): Promise<TokenRequester> {
  const [{ CoreV1Api }, { kubeClient }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('./kube-client.js'),
  ]);
  const { configuration, server } = kubeClient(kubeconfig, timeoutMs);
  const core = new CoreV1Api(configuration);
  return async (expirationSeconds) => {
    let answer;
    try {
      answer = await core.createNamespacedServiceAccountToken({
        name: serviceAccount,
        namespace,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: [], expirationSeconds },
        },
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new Error(
        `TokenRequest for ServiceAccount ${namespace}/${serviceAccount} at ${server} failed${code !== undefined ? ` (HTTP ${String(code)})` : `: ${err instanceof Error ? err.message : String(err)}`}`,
      );
    }
    const token = answer.status?.token;
    const expires = answer.status?.expirationTimestamp;
    if (!token || !expires)
      throw new Error(
        `TokenRequest for ServiceAccount ${namespace}/${serviceAccount}: the answer has no token or no expirationTimestamp`,
      );
    return { token, expiresAt: new Date(expires).getTime() };
  };
}
