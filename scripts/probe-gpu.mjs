// Prints the WebGPU adapter found through Dawn, or exits 1. Used by scripts/ensure.sh.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
globalThis.__momlabProbeGpu = gpu; // keep alive: Dawn segfaults if the instance is collected
const adapter = await gpu.requestAdapter();
if (!adapter) { console.error('no WebGPU adapter'); process.exit(1); }
const info = adapter.info ?? {};
console.log(`adapter: ${info.vendor ?? '?'} ${info.architecture ?? ''} ${info.description ?? ''}`.trim());
process.exit(0);
