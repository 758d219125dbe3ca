/** RS256 JSON Web Tokens (RFC 7519) with node:crypto: the assertions of the Google and Microsoft certificate flows. */
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';

const b64url = (value: Buffer | string): string => Buffer.from(value).toString('base64url');

/** `header.claims.signature`, signed with RSASSA-PKCS1-v1_5 over SHA-256. */
export function signRs256(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  privateKeyPem: string,
): string {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', ...header }))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(input), createPrivateKey(privateKeyPem));
  return `${input}.${b64url(signature)}`;
}

/** Google's JWT bearer assertion (RFC 7523): the service account acts as `subject` (domain-wide delegation). */
export function googleAssertion(o: {
  clientEmail: string;
  privateKey: string;
  subject: string;
  scope: string;
  audience: string;
  nowS: number;
}): string {
  return signRs256(
    {},
    { iss: o.clientEmail, sub: o.subject, scope: o.scope, aud: o.audience, iat: o.nowS, exp: o.nowS + 3600 },
    o.privateKey,
  );
}

/**
 * Microsoft's client assertion (certificate credential): `x5t` is the base64url SHA-1 thumbprint of the
 * certificate uploaded to the app registration, by which Entra ID finds the key to verify with.
 */
export function microsoftClientAssertion(o: {
  clientId: string;
  certificate: string;
  privateKey: string;
  audience: string;
  nowS: number;
}): string {
  const der = new X509Certificate(o.certificate).raw;
  return signRs256(
    { x5t: b64url(createHash('sha1').update(der).digest()) },
    {
      aud: o.audience,
      iss: o.clientId,
      sub: o.clientId,
      jti: randomUUID(),
      nbf: o.nowS,
      iat: o.nowS,
      exp: o.nowS + 600,
    },
    o.privateKey,
  );
}
