// Subscribes with the graphql-ws client (graphql-transport-ws) and prints what happens, one
// JSON object a line on stdout:
//   {"kind":"connected"}                        connection_ack received
//   {"kind":"subscribed","sub":i}               subscribe sent for subscriptions[i]
//   {"kind":"next","sub":i,"payload":{...}}     a result
//   {"kind":"error","sub":i,"error":...}        the subscription's error (GraphQL errors or close)
//   {"kind":"complete","sub":i}
//   {"kind":"ping","received":true}             a ping from the server
//   {"kind":"closed","code":4403,"reason":"…"}  the socket closed
//   {"kind":"timeout"}
//
// usage: node subscribe_ws.mjs '<config JSON>'
//   url, connectionParams, subscriptions: [{query, variables}], count (exit after this many
//   results in all), untilClosed (exit once the socket closes), untilPings (exit after this
//   many server pings), initDelayMs (hold connection_init back), fixedId (every
//   subscription gets this id), timeoutMs.
// Packages resolve from NODE_PATH (ES modules ignore it, so through createRequire).
import { createRequire } from 'node:module';

const require = createRequire(process.env.NODE_PATH.replace(/\/?$/, '/'));
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');

const config = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let results = 0;
let pings = 0;
let client;

function finish(code) {
  try {
    client?.dispose();
  } catch {
    // exiting anyway
  }
  // stdout is a pipe: let it drain before leaving
  process.stdout.write('', () => process.exit(code));
}

setTimeout(() => {
  print({ kind: 'timeout' });
  finish(2);
}, config.timeoutMs ?? 20000);

client = createClient({
  url: config.url,
  webSocketImpl: WebSocket,
  lazy: false,
  retryAttempts: 0,
  shouldRetry: () => false,
  onNonLazyError: () => {},
  connectionParams: async () => {
    if (config.initDelayMs) await sleep(config.initDelayMs);
    return config.connectionParams ?? {};
  },
  ...(config.fixedId ? { generateID: () => config.fixedId } : {}),
  on: {
    connected: () => print({ kind: 'connected' }),
    ping: (received) => {
      if (!received) return;
      pings += 1;
      print({ kind: 'ping', received });
      if (config.untilPings && pings >= config.untilPings) finish(0);
    },
    closed: (event) => {
      print({ kind: 'closed', code: event?.code ?? null, reason: event?.reason ?? null });
      if (config.untilClosed) finish(0);
    },
  },
});

(config.subscriptions ?? []).forEach(({ query, variables }, sub) => {
  client.subscribe(
    { query, variables },
    {
      next: (payload) => {
        results += 1;
        print({ kind: 'next', sub, payload });
        if (config.count && results >= config.count) finish(0);
      },
      error: (error) => {
        const shown = Array.isArray(error)
          ? error
          : error && typeof error === 'object' && 'code' in error
            ? { code: error.code, reason: error.reason }
            : String(error);
        print({ kind: 'error', sub, error: shown });
      },
      complete: () => print({ kind: 'complete', sub }),
    },
  );
  print({ kind: 'subscribed', sub });
});
