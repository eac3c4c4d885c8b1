// Reads the MCP Apps bridge messages a view exchanged with its host (a JSON array of {from, message}
// on stdin) and checks each against @modelcontextprotocol/ext-apps' own schemas. Prints one line per
// message; exits 1 if any fails or has no schema.
import * as apps from "@modelcontextprotocol/ext-apps";

const requests = {
  "ui/initialize": ["McpUiInitializeRequestSchema", "McpUiInitializeResultSchema"],
  "ui/open-link": ["McpUiOpenLinkRequestSchema", "McpUiOpenLinkResultSchema"],
};
const notifications = {
  "ui/notifications/initialized": "McpUiInitializedNotificationSchema",
  "ui/notifications/size-changed": "McpUiSizeChangedNotificationSchema",
  "ui/notifications/tool-input": "McpUiToolInputNotificationSchema",
  "ui/notifications/tool-result": "McpUiToolResultNotificationSchema",
  "ui/notifications/host-context-changed": "McpUiHostContextChangedNotificationSchema",
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const methodOf = new Map(); // request id -> method, to check responses
let failed = 0;
for (const { from, message } of JSON.parse(input)) {
  let name;
  let value = message;
  if (message.method !== undefined && message.id !== undefined) {
    methodOf.set(`${from}:${message.id}`, message.method);
    name = (requests[message.method] || [])[0];
  } else if (message.method !== undefined) {
    name = notifications[message.method];
  } else {
    const method = methodOf.get(`${from === "host" ? "view" : "host"}:${message.id}`);
    name = (requests[method] || [])[1];
    value = message.result;
  }
  const schema = name && apps[name];
  const res = schema ? schema.safeParse(value) : { success: false, error: { issues: ["no schema for this message"] } };
  const label = `${from}: ${message.method || "response"}`;
  if (res.success) {
    console.log(`ok   ${label} (${name})`);
  } else {
    failed++;
    console.log(`FAIL ${label}: ${JSON.stringify(res.error.issues)}`);
  }
}
process.exit(failed ? 1 : 0);
