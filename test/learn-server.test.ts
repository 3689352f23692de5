/**
 * The `momlab learn` server: 127.0.0.1 only, its own two assets and nothing else (no path
 * traversal, no other methods, no foreign Host), and bad options as one-line errors.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../reference/errors.js';
import { run, startServer, type LearnServer } from '../src/cli/learn.js';

/** A raw request: the path goes out exactly as written (fetch would normalise '..' away). */
function raw(port: number, path: string, opts: { method?: string; host?: string; body?: string } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host: opts.host ?? `127.0.0.1:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('momlab learn server', () => {
  let s: LearnServer;
  let port: number;
  beforeAll(async () => {
    s = await startServer();
    port = (s.server.address() as AddressInfo).port;
  });
  afterAll(() => s.server.close());

  it('listens on 127.0.0.1 only and serves the page and its bundle', async () => {
    expect((s.server.address() as AddressInfo).address).toBe('127.0.0.1');
    expect(s.url).toBe(`http://127.0.0.1:${port}/`);
    const page = await raw(port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('<script type="module" src="/page.js">');
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'/);
    const js = await raw(port, '/page.js?v=1');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    // The bundle carries momlab's own reference code (the trace), not a copy written for the page.
    expect(js.body).toContain('traceSteps follows one sequence and one head');
  });

  it('serves nothing else: traversal, encoded traversal, source files and absolute paths are 404', async () => {
    for (const path of ['/../package.json', '/%2e%2e/package.json', '/..%2f..%2fpackage.json', '/learn/page.ts', '/index.html', '//etc/passwd', '/page.js/../../package.json', '/%2fetc%2fpasswd']) {
      const r = await raw(port, path);
      expect(r.status, path).toBe(404);
      expect(r.body, path).toBe('not found\n');
    }
  });

  it('answers only GET and HEAD, and only for its own Host', async () => {
    const post = await raw(port, '/', { method: 'POST', body: 'x'.repeat(100_000) });
    expect(post.status).toBe(405);
    const head = await raw(port, '/page.js', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const foreign = await raw(port, '/', { host: 'evil.example' });
    expect(foreign.status).toBe(421);
    expect((await raw(port, '/', { host: `localhost:${port}` })).status).toBe(200);
  });

  it('rejects bad options and a taken port with a ConfigError (exit 2)', async () => {
    await expect(run(['--port', '70000'])).rejects.toThrow(ConfigError);
    await expect(run(['--port', '1.5'])).rejects.toThrow(/--port must be an integer in 0\.\.65535, got 1\.5/);
    await expect(run(['--port'])).rejects.toThrow(/--port needs a value/);
    await expect(run(['extra'])).rejects.toThrow(/unexpected argument 'extra'/);
    await expect(startServer(port)).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
  });

  it('`momlab learn --port N` prints its URL, serves it, and stops on SIGTERM', async () => {
    const free = await startServer();
    const p = (free.server.address() as AddressInfo).port;
    await new Promise<void>((r) => free.server.close(() => r()));
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `process.exitCode = await (await import('./src/cli/learn.ts')).run(['--port', '${p}'])`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code} before printing: ${out}`)));
    });
    expect(line).toBe(`momlab learn: serving http://127.0.0.1:${p}/  (Ctrl-C to stop)`);
    expect((await raw(p, '/')).status).toBe(200);
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
  });
});

describe("the learn page's model (learn/model.ts)", () => {
  it('keeps the view in the URL: a round trip gives the same params; bad fields fall back or are clamped', async () => {
    const { paramsFromQuery, paramsToQuery, DEFAULTS } = await import('../learn/model.js');
    const p = { ...DEFAULTS, rule: 'file', ruleText: 'state S[dk, dv]\n# ü & = ?', E: 7, topk: 3, dk: 5, dv: 2, T: 11, seed: 99, shared: false, t: 10, C: 3, mem: -1, chunk: 2 };
    expect(paramsFromQuery(paramsToQuery(p))).toEqual(p);
    const bad = paramsFromQuery('rule=<script>&E=1e9&topk=-3&dk=abc&T=100000&seed=-1&t=500&ruleText=' + 'x'.repeat(100_000));
    expect(bad).toMatchObject({ rule: DEFAULTS.rule, E: 16, topk: 1, dk: DEFAULTS.dk, T: 64, seed: 0, t: 63 });
    expect(bad.ruleText.length).toBe(16_384);
  });

  it("the chunked view's outputs equal the token-by-token ones for every built-in rule and memory", async () => {
    const { buildModel, chunkView, DEFAULTS } = await import('../learn/model.js');
    const { RULE_NAMES } = await import('../reference/rules/index.js');
    for (const rule of RULE_NAMES) {
      const model = buildModel({ ...DEFAULTS, rule, E: 3, topk: 2, dk: 5, dv: 3, T: 13, seed: 31 });
      for (const mem of [-1, 0, 1, 2]) {
        const v = chunkView(model, mem, 3);
        expect(v.chunks.length).toBe(Math.ceil(v.tokens.length / 3));
        v.chunked.forEach((r, i) => r.forEach((x, j) => expect(Math.abs(x - v.recurrent[i][j]), `${rule} memory ${mem}`).toBeLessThan(1e-12)));
        // the chunk-start state of chunk c is the token-by-token state after the token before it
        v.chunks.slice(1).forEach((ch) => {
          const t = v.tokens[ch.start - 1];
          const S = mem < 0 ? model.sharedStates![t] : model.states[t][mem];
          expect(Array.from(ch.h)).toEqual(S.flat().map((x) => expect.closeTo(x, 12)));
        });
      }
    }
  });
});
