// Every entry point of the installed package, type-checked from the user's side (pack-check.sh).
import * as momlab from 'momlab';
import * as gpu from 'momlab/gpu';
import * as properties from 'momlab/properties';
import * as reference from 'momlab/reference';

export const entries = [momlab, gpu, properties, reference];
export type Used = [momlab.LayerConfig, gpu.GpuContext, properties.Property<unknown>, reference.CoreConfig];

// The WebGPU types come with the package (no DOM lib here): were GPUDevice unresolved, this
// assignment would pass unnoticed and the directive below would be the error.
// @ts-expect-error a number is not a GPUDevice
export const device: gpu.GpuContext['device'] = 1;
