// The TypeScript SDK's client (npm @modelcontextprotocol/sdk) against the hub: connect, list,
// call (with an elicitation round and progress), read a resource, get a prompt. Prints JSON lines.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const url = process.argv[2];
const prefix = process.argv[3] ?? "";
const out = (obj) => console.log(JSON.stringify(obj));

const client = new Client({ name: "ts-sdk-test", version: "1.0.0" }, { capabilities: { elicitation: {} } });
client.setRequestHandler(ElicitRequestSchema, async (request) => ({
  action: "accept",
  content: { username: "ts-user", email: "ts@example.test" },
}));
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
out({ server: client.getServerVersion(), protocol: transport.protocolVersion, session: Boolean(transport.sessionId) });
const tools = await client.listTools();
out({ tools: tools.tools.map((t) => t.name) });
out({ call: await client.callTool({ name: "hub__status", arguments: {} }) });
if (prefix) {
  const progress = [];
  const result = await client.callTool(
    { name: `${prefix}__test_tool_with_progress`, arguments: {} },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  out({ progress, text: result.content[0].text });
  const asked = await client.callTool({ name: `${prefix}__test_elicitation`, arguments: { message: "Who are you?" } });
  out({ elicitation: asked.content[0].text });
  const prompt = await client.getPrompt({ name: `${prefix}__test_simple_prompt` });
  out({ prompt: prompt.messages[0].content.text });
}
const catalog = await client.readResource({ uri: "junction://catalog" });
out({ catalog: JSON.parse(catalog.contents[0].text).tools.length });
await transport.terminateSession();
await client.close();
