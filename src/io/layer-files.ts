/** Layer files on disk: a config JSON and a weights safetensors file, validated against reference/layer-config.ts. */
import { ConfigError, FormatError } from '../../reference/errors.js';
import { layerParamShapes, parseLayerConfig, type LayerConfig, type LayerWeights } from '../../reference/layer-config.js';
import { readRegular } from './files.js';
import { expectTensor, type SafetensorsFile } from './safetensors.js';

/** A config is a few hundred bytes; anything past this is not one. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** Take a layer's weights out of a safetensors file: every tensor present with its shape, no others, all finite. */
export function layerWeightsFrom(file: SafetensorsFile, c: LayerConfig): LayerWeights {
  const shapes = layerParamShapes(c);
  const w: LayerWeights = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const data = expectTensor(file, name, shape);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new FormatError(`${file.source}: tensor '${name}' holds a non-finite value (${data[bad]}) at flat index ${bad}`);
    w[name] = data;
  }
  const extra = [...file.tensors.keys()].filter((n) => !(n in shapes));
  if (extra.length) throw new FormatError(`${file.source}: tensor${extra.length > 1 ? 's' : ''} ${extra.map((n) => `'${n}'`).join(', ')} not expected for this config (a file for another configuration?)`);
  return w;
}

/** Read and validate a config JSON file. */
export async function readLayerConfig(path: string): Promise<LayerConfig> {
  const text = (await readRegular(path, MAX_CONFIG_BYTES, 'config')).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return parseLayerConfig(json, `config '${path}'`);
}
