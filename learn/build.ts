/**
 * Bundles the learn page (learn/page.ts and the reference, GPU and property code it imports)
 * with esbuild, in memory: `momlab learn` serves exactly these assets and nothing from disk.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

export interface Asset {
  type: string;
  body: Buffer;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The page imports formatTable from src/cli/check.ts, whose module graph reaches Node's file I/O
 * (layer weight files) that the page never calls; those built-ins become empty modules.
 */
const nodeBuiltinsEmpty: Plugin = {
  name: 'node-builtins-empty',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'node-empty' }));
    b.onLoad({ filter: /.*/, namespace: 'node-empty' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

/** The page's assets by URL path. */
export async function bundlePage(): Promise<Map<string, Asset>> {
  const out = await build({
    entryPoints: [join(here, 'page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    outdir: 'out',
    // The Node-only Dawn package is loaded lazily by gpu/device.ts and never reached in a browser (navigator.gpu).
    external: ['webgpu'],
    plugins: [nodeBuiltinsEmpty],
    logLevel: 'silent',
  });
  const js = out.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!js) throw new Error('esbuild produced no page.js');
  return new Map([
    ['/', { type: 'text/html; charset=utf-8', body: await readFile(join(here, 'index.html')) }],
    ['/page.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(js.contents) }],
  ]);
}
