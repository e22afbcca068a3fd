// Subscribes with the graphql-sse client in "distinct connections" mode and prints what
// happens, one JSON object a line on stdout:
//   {"kind":"request","lastEventId":null|"12"}  the client opened a stream (headers it sent)
//   {"kind":"next","payload":{...}}             a result
//   {"kind":"dropped"}                          this script cut the stream (dropAfter)
//   {"kind":"error","error":...} / {"kind":"complete"} / {"kind":"timeout"}
//
// usage: node subscribe_sse.mjs '<config JSON>'
//   url, headers, query, variables, count (exit after this many results), timeoutMs,
//   dropAfter: cut the stream after this many results, as a network failure would, then
//     wait for a line on stdin before the client reconnects (its own retry);
//   resume: on reconnecting, send `Last-Event-ID` with the last result's `cursor` (the
//     graphql-sse client itself keeps no event ids: its parser drops the `id:` field).
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(process.env.NODE_PATH.replace(/\/?$/, '/'));
const { createClient } = require('graphql-sse');

const config = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const stdin = createInterface({ input: process.stdin });
const lines = [];
let lineWaiter = null;
stdin.on('line', (line) => {
  lines.push(line);
  lineWaiter?.();
});
async function nextLine() {
  while (!lines.length) await new Promise((resolve) => (lineWaiter = resolve));
  return lines.shift();
}

let results = 0;
let lastCursor = null;
let current = null; // the AbortController of the stream now open
let client;

function finish(code) {
  try {
    client?.dispose();
  } catch {
    // exiting anyway
  }
  process.stdout.write('', () => process.exit(code));
}

setTimeout(() => {
  print({ kind: 'timeout' });
  finish(2);
}, config.timeoutMs ?? 20000);

client = createClient({
  url: config.url,
  headers: () => ({
    ...(config.headers ?? {}),
    ...(config.resume && lastCursor ? { 'Last-Event-ID': lastCursor } : {}),
  }),
  retryAttempts: config.dropAfter ? 1 : 0,
  retry: async () => {
    await nextLine(); // the test made its changes while we were away
  },
  fetchFn: (url, init) => {
    const headers = Object.fromEntries(
      Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
    );
    print({ kind: 'request', lastEventId: headers['last-event-id'] ?? null });
    current = new AbortController();
    init.signal?.addEventListener('abort', () => current.abort());
    return fetch(url, { ...init, signal: current.signal });
  },
});

client.subscribe(
  { query: config.query, variables: config.variables },
  {
    next: (payload) => {
      results += 1;
      const root = Object.values(payload?.data ?? {})[0];
      if (root && typeof root === 'object' && root.cursor) lastCursor = root.cursor;
      print({ kind: 'next', payload });
      if (config.count && results >= config.count) return finish(0);
      if (config.dropAfter && results === config.dropAfter) {
        // after the client has gone back to waiting for the next result: a dropped stream
        const stream = current;
        setTimeout(() => {
          stream.abort(new Error('dropped by the test'));
          print({ kind: 'dropped' });
        }, 50);
      }
    },
    error: (error) => {
      const shown =
        error instanceof Error ? `${error.name}: ${error.message}` : JSON.stringify(error);
      print({ kind: 'error', error: shown });
      finish(1);
    },
    complete: () => {
      print({ kind: 'complete' });
      finish(0);
    },
  },
);
