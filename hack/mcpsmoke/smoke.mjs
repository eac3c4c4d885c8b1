// A new user's first session, with a client we did not write (the TypeScript MCP SDK): connect to a
// running TraceKit with an API key, list the tools, and call each one, following the ids answers give.
// Usage: node hack/mcpsmoke/smoke.mjs <MCP URL> <API key>   (make smoke-mcp, against make run)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key] = process.argv.slice(2);
if (!url || !key) {
  console.error("usage: smoke.mjs <MCP URL> <API key>");
  process.exit(2);
}
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "tracekit-smoke", version: "1.0.0" });
await client.connect(transport);

const { tools } = await client.listTools();
console.log(`tools/list: ${tools.length} tools: ${tools.map((t) => t.name).join(", ")}`);

const found = {};
const firstId = (obj, keys) => {
  const seen = [obj];
  while (seen.length) {
    const v = seen.shift();
    if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (keys.includes(k) && (typeof x === "string" || typeof x === "number") && x !== "") return x;
        seen.push(x);
      }
    }
  }
  return undefined;
};
const order = ["list_services", "search_traces", "get_trace_detail", "get_service_metrics", "get_active_alerts",
  "search_anomalies", "get_rca", "list_breakpoints", "search_snapshots", "search_llm_calls", "get_llm_stats"];
let failures = 0;
for (const name of order) {
  const args = {};
  if (name === "get_trace_detail") args.trace_id = found.trace_id;
  if (name === "get_service_metrics") args.service = found.service;
  if (name === "get_rca") {
    if (found.anomaly_id !== undefined) args.anomaly_id = found.anomaly_id;
    else args.trace_id = found.trace_id; // before the first analysis tick there are no anomalies yet
  }
  const started = Date.now();
  const res = await client.callTool({ name, arguments: args });
  const text = res.content?.map((c) => c.text ?? "").join("\n") ?? "";
  const sc = res.structuredContent ?? {};
  if (name === "list_services") found.service = firstId(sc, ["name", "service"]);
  if (name === "search_traces") found.trace_id = firstId(sc, ["trace_id"]);
  if (name === "search_anomalies") found.anomaly_id = firstId(sc, ["id", "anomaly_id"]);
  const ok = !res.isError && res.structuredContent !== undefined;
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name.padEnd(20)} ${String(Date.now() - started).padStart(5)} ms  ~${Math.round(text.length / 4)} tokens  ${JSON.stringify(args)}`);
  if (!ok) console.log(text.slice(0, 500));
}
await client.close();
process.exit(failures ? 1 : 0);
