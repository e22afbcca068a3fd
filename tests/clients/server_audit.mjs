// Runs graphql-http's GraphQL over HTTP server audits against a URL and prints one JSON line
// per audit: {id, name, status, reason?, responseStatus?, responseBody?}.
// Usage: node server_audit.mjs <graphql-http module dir> <url>
import { createRequire } from "node:module";
import path from "node:path";

const [moduleDir, url] = process.argv.slice(2);
const require = createRequire(path.join(moduleDir, "package.json"));
const { serverAudits } = require("graphql-http");

// The gateway prevents CSRF (gateway/view.py): a GET, or a POST of a CORS-safelisted content
// type, must carry a header no cross-site form can send. A real browser client of such a
// server sends `Apollo-Require-Preflight` with every request; nothing else is altered.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("apollo-require-preflight", "true");
  return fetch(input, { ...init, headers });
};

for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") {
    line.reason = result.reason;
    line.responseStatus = result.response?.status;
    try {
      line.responseBody = await result.response.clone().text();
    } catch {
      line.responseBody = null; // already read by the audit
    }
  }
  console.log(JSON.stringify(line));
}
