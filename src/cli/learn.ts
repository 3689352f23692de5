/**
 * `momlab learn`: a local web page for learners, served on 127.0.0.1 only. The page is bundled
 * from the reference, GPU and property code at start (learn/build.ts) and held in memory, so the
 * server answers a fixed set of paths and never touches the file system per request.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../reference/errors.js';
import { parseArgs } from './args.js';

export const usage = `usage: momlab learn [options]

Serves a page on http://127.0.0.1 that walks through the model token by token: routing, each
memory's update and read-out (with this token's numbers), the state heatmaps, the chunked form
for one chunk, and "check this GPU" (the property suite on the browser's WebGPU).

options:
  --port N   port to listen on (default: a free one)
  --open     open the page in the default browser`;

// Only the page's own files, and no Content-Security-Policy escape: 'unsafe-eval' is there because
// momlab's rule language compiles a rule file to a JavaScript function (reference/rules/from-text.ts).
const HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export interface LearnServer {
  url: string;
  server: Server;
}

// An installed package carries the page prebuilt (npm run build writes it here, beside dist/src);
// a source checkout bundles it from learn/ at start, with esbuild (a development dependency).
const PREBUILT = new URL('../../learn-page/', import.meta.url);

async function pageAssets(): Promise<Map<string, { type: string; body: Buffer }>> {
  if (!existsSync(new URL('page.js', PREBUILT))) return (await import('../../learn/build.js')).bundlePage();
  return new Map([
    ['/', { type: 'text/html; charset=utf-8', body: await readFile(new URL('index.html', PREBUILT)) }],
    ['/page.js', { type: 'text/javascript; charset=utf-8', body: await readFile(new URL('page.js', PREBUILT)) }],
  ]);
}

/** Builds the page and listens on 127.0.0.1:port (0: a free port). */
export async function startServer(port = 0): Promise<LearnServer> {
  const assets = await pageAssets();
  let host = '';
  const server = createServer((req, res) => {
    // A Host other than our own address is a page elsewhere reaching in (DNS rebinding): refuse it.
    if (req.headers.host !== host && req.headers.host !== host.replace('127.0.0.1', 'localhost')) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('wrong host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain', connection: 'close' }).end('method not allowed\n');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const asset = assets.get(path);
    if (!asset) {
      res.writeHead(404, { 'content-type': 'text/plain', ...HEADERS }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...HEADERS });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' || e.code === 'EACCES' ? new ConfigError(`momlab learn: cannot listen on 127.0.0.1:${port} (${e.code})`) : e),
    );
    server.listen(port, '127.0.0.1', resolve);
  });
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: `http://${host}/`, server };
}

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => console.error(`momlab learn: could not run ${cmd}; open ${url} yourself`));
  child.unref();
}

export async function run(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, { port: 'number', open: 'boolean' }, 'learn');
  if (positional.length > 0) throw new ConfigError(`momlab learn: unexpected argument '${positional[0]}' (see momlab learn --help)`);
  const port = (flags.port as number | undefined) ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`momlab learn: --port must be an integer in 0..65535, got ${port}`);
  const { url, server } = await startServer(port);
  console.log(`momlab learn: serving ${url}  (Ctrl-C to stop)`);
  if (flags.open) openBrowser(url);
  await new Promise<void>((resolve) => {
    const stop = () => {
      server.close(() => resolve());
      server.closeAllConnections(); // a browser's keep-alive connections would hold the server open
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
