/** Writes the learn page's two assets (learn/build.ts) into a folder: `tsx scripts/build-learn.ts dist/learn-page`. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundlePage } from '../learn/build.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: tsx scripts/build-learn.ts <folder>');
  process.exit(2);
}
mkdirSync(dir, { recursive: true });
const assets = await bundlePage();
writeFileSync(join(dir, 'index.html'), assets.get('/')!.body);
writeFileSync(join(dir, 'page.js'), assets.get('/page.js')!.body);
