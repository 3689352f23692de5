/**
 * `momlab init`: random layer weights with fla's initialisation (fla/layers/mom.py, MomAttention):
 *  - every Linear: xavier_uniform with gain 2^-2.5 (MomAttention._initialize_weights). It marks
 *    its modules as initialised, so MomModel's `_init_weights` (normal(0, initializer_range))
 *    does not overwrite them; a bare MomAttention and a MomModel agree on this.
 *  - conv1d (ShortConvolution is an nn.Conv1d): PyTorch's default kaiming_uniform(a = sqrt 5),
 *    i.e. uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = W for a depthwise conv.
 *  - A_log = log(uniform(0, 16)); dt_bias = softplus^-1(dt), dt log-uniform in [0.001, 0.1]
 *    clamped below at 1e-4; o_norm.weight = 1.
 * The PRNG is mulberry32 (reference/sample.ts): the same seed gives the same file everywhere,
 * though not the numbers torch would draw.
 */
import { parseArgs } from './args.js';
import { checkMemory, processContext, type CliContext } from './context.js';
import { ConfigError } from '../../reference/errors.js';
import { mulberry32 } from '../../reference/sample.js';
import { layerParamShapes, type LayerConfig, type LayerWeights } from '../../reference/layer-config.js';
import { readLayerConfig } from '../io/layer-files.js';
import { checkOutputs } from '../io/files.js';
import { writeSafetensors } from '../io/safetensors.js';

export const usage = `usage: momlab init --config layer.json --seed S --out weights.safetensors [--force]

Create random weights for one MoM layer (fla's MomAttention state-dict names and shapes, F32)
with fla's initialisation rules. The config is a JSON object with MomConfig keys:
  hidden_size, num_heads, head_dim, expand_v, num_memories, topk, shared_mem, single_kv_proj,
  conv_size, norm_eps (missing keys take fla's defaults; unknown keys are refused).
An existing --out is replaced only with --force, and never when it is the config.`;

/** Parameters of a config (they may be too many to allocate: computed from the shapes alone). */
export const paramCount = (c: LayerConfig): number => Object.values(layerParamShapes(c)).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);

export function initLayerWeights(c: LayerConfig, seed: number): LayerWeights {
  const rand = mulberry32(seed);
  // (0, 1]: keeps log() finite
  const open = () => 1 - rand();
  const w: LayerWeights = {};
  for (const [name, shape] of Object.entries(layerParamShapes(c))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const t = new Float64Array(n);
    if (name === 'A_log') for (let i = 0; i < n; i++) t[i] = Math.log(16 * open());
    else if (name === 'dt_bias') {
      for (let i = 0; i < n; i++) {
        const dt = Math.max(1e-4, Math.exp(rand() * (Math.log(0.1) - Math.log(0.001)) + Math.log(0.001)));
        t[i] = dt + Math.log(-Math.expm1(-dt)); // inverse softplus
      }
    } else if (name === 'o_norm.weight') t.fill(1);
    else if (name.includes('conv1d')) {
      const bound = 1 / Math.sqrt(shape[1] * shape[2]);
      for (let i = 0; i < n; i++) t[i] = (2 * rand() - 1) * bound;
    } else {
      const [out, inn] = shape;
      const bound = 2 ** -2.5 * Math.sqrt(6 / (inn + out));
      for (let i = 0; i < n; i++) t[i] = (2 * rand() - 1) * bound;
    }
    w[name] = t;
  }
  return w;
}

export async function writeLayerWeights(path: string, c: LayerConfig, w: LayerWeights, metadata: Record<string, string> = {}): Promise<void> {
  const shapes = layerParamShapes(c);
  await writeSafetensors(path, Object.fromEntries(Object.entries(shapes).map(([n, shape]) => [n, { shape, data: w[n] }])), { format: 'pt', ...metadata });
}

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(argv, { config: 'string', seed: 'number', out: 'string', force: 'boolean' }, 'init');
  for (const f of ['config', 'seed', 'out'] as const) if (flags[f] === undefined) throw new ConfigError(`momlab init: --${f} is required (see momlab init --help)`);
  const seed = flags.seed as number;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new ConfigError(`momlab init: --seed must be an integer in 0..2^32-1, got ${seed}`);
  await checkOutputs([flags.out as string], { force: flags.force === true, inputs: [flags.config as string] }, 'init');
  const c = await readLayerConfig(flags.config as string);
  // float64 weights, then their float32 file
  const params = paramCount(c);
  checkMemory(ctx, 'init', `a layer of ${params} parameters`, 12 * params);
  const w = initLayerWeights(c, seed);
  await writeLayerWeights(flags.out as string, c, w, { momlab_config: JSON.stringify(c), momlab_seed: String(seed) });
  const count = Object.values(w).reduce((a, t) => a + t.length, 0);
  ctx.stdout.write(`wrote ${flags.out}: ${Object.keys(w).length} tensors, ${count} parameters (seed ${seed})\n`);
  return 0;
}
