// The TypeScript SDK's MCP client signing in to TraceKit the way desktop clients built on it do:
// discovery from the 401, dynamic registration or a client metadata document, PKCE, a loopback
// redirect, then a tool call.
//
// Usage: node client.mjs <MCP URL> [<client metadata document URL>]
// It talks to the Go test on stdout: "AUTHORIZE <url>" when a user must sign in in a browser, then
// "RESULT <json>" with what the test checks. The loopback redirect URI is served here.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const mcpURL = new URL(process.argv[2]);
const clientMetadataUrl = process.argv[3];

const listener = http.createServer();
await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
const redirectUrl = `http://127.0.0.1:${listener.address().port}/callback`;
const authorizationResponse = new Promise((resolve) => {
  listener.on('request', (req, res) => {
    res.end('Signed in. You can close this window.');
    resolve(new URL(req.url, redirectUrl).searchParams);
  });
});

// Keeps everything in memory, as a test needs; real clients persist it.
class Provider {
  get redirectUrl() { return redirectUrl; }
  // With a document URL, the SDK presents it as client_id where the server supports that.
  get clientMetadataUrl() { return clientMetadataUrl; }
  get clientMetadata() {
    return {
      client_name: 'TypeScript SDK e2e',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { this.sentState = randomUUID(); return this.sentState; }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.savedTokens; }
  saveTokens(tokens) { this.savedTokens = tokens; }
  redirectToAuthorization(url) { console.log(`AUTHORIZE ${url}`); }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
}

const provider = new Provider();
const client = new Client({ name: 'ts-sdk-e2e', version: '1.0.0' });
let transport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider });
try {
  await client.connect(transport);
  throw new Error('connected without signing in');
} catch (err) {
  if (!(err instanceof UnauthorizedError)) throw err;
}

const params = await authorizationResponse;
if (params.get('error')) throw new Error(`authorization failed: ${params.get('error')}: ${params.get('error_description')}`);
if (params.get('state') !== provider.sentState) throw new Error('state mismatch');
await transport.finishAuth(params.get('code'));

transport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider });
await client.connect(transport);
const result = await client.callTool({ name: 'list_services', arguments: {} });
console.log(`RESULT ${JSON.stringify({
  isError: result.isError ?? false,
  structured: result.structuredContent !== undefined,
  iss: params.get('iss'),
  clientID: provider.client.client_id,
  refreshToken: Boolean(provider.savedTokens.refresh_token),
})}`);
await client.close();
listener.close();
