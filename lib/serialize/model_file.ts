// Model files: one format for the API and the CLI. A model file is a safetensors
// file (PyTorch reads its weights) whose metadata says how to rebuild the model
// (its architecture: a preset and options, a layer list, or a graph) and how to
// apply it (ModelInfo: pre-processing, channels, class names, spacing, window).
// Trainer checkpoints are model files with the trainer's state beside. The
// builders of presets and layers come from the registry (lib/models/load.ts).
import { describe, SegvolError } from '../core/errors';
import type { SafetensorsFile } from '../io/safetensors';
import { graph, type GraphNode } from '../nn/graph';
import type { LayerBuilder, LayerSpec } from '../nn/layer';
import { modelFileFormat, type Architecture, type ModelBase, type ModelInfo } from '../nn/model';
import { sequential } from '../nn/sequential';

/** The builders a model file names: presets and layer types. */
export interface Builders {
  presets: ReadonlyMap<string, (options: never) => ModelBase>;
  layers: ReadonlyMap<string, (options: never) => LayerBuilder>;
}

export interface LoadModelOptions {
  /** Factories for models written as classes (architecture kind 'custom'), by class name. */
  custom?: Record<string, (options: object | undefined) => ModelBase>;
}

function layerFrom(builders: Builders, spec: LayerSpec, where: string): LayerBuilder {
  const make = builders.layers.get(spec.type);
  if (!make) {
    throw new SegvolError('ERR_FORMAT', `${where}: the layer type '${spec.type}' is unknown to this segvol; the file may come from a newer version`);
  }
  return make(spec.options as never);
}

/** Builds the model an architecture describes (fresh weights). */
export function buildArchitecture(architecture: Architecture, builders: Builders, options: LoadModelOptions = {}, where = 'model'): ModelBase {
  switch (architecture.kind) {
    case 'preset': {
      const make = builders.presets.get(architecture.preset);
      if (!make) throw new SegvolError('ERR_FORMAT', `${where}: unknown preset '${architecture.preset}'; known: ${[...builders.presets.keys()].join(', ')}`);
      return make(architecture.options as never);
    }
    case 'sequential':
      return sequential(architecture.layers.map((l, i) => layerFrom(builders, l, `${where}: layers.${i}`)),
        { inChannels: architecture.inChannels, seed: architecture.seed });
    case 'graph':
      return graph({
        inputs: architecture.inputs, seed: architecture.seed, outputs: architecture.outputs,
        nodes: architecture.nodes.map((n) => ('layer' in n ? { name: n.name, layer: layerFrom(builders, n.layer, `${where}: nodes.${n.name}`), input: n.input }
          : { name: n.name, join: n.join, inputs: n.inputs }) as GraphNode),
      });
    case 'custom': {
      const make = options.custom?.[architecture.name];
      if (!make) {
        throw new SegvolError('ERR_ARGUMENT', `${where}: holds a model of the class ${architecture.name}; pass its factory: ` +
          `loadModel(file, { custom: { ${architecture.name}: (options) => new ${architecture.name}(...) } })`);
      }
      return make(architecture.options);
    }
    default:
      throw new SegvolError('ERR_FORMAT', `${where}: unknown architecture kind ${describe((architecture as { kind: unknown }).kind)}`);
  }
}

/** The model description a file carries, if any (also from checkpoints of segvol 0.1, which named only a pyramidNet config). */
export function modelDescription(file: SafetensorsFile, where: string): { architecture: Architecture; info: ModelInfo } | undefined {
  const raw = file.metadata['segvol.model'];
  if (raw) {
    const d = JSON.parse(raw) as { format: string; architecture: Architecture; info?: ModelInfo };
    if (d.format !== modelFileFormat) {
      throw new SegvolError('ERR_FORMAT', `${where}: model format '${d.format}' is unknown to this segvol (reads ${modelFileFormat}); upgrade segvol`);
    }
    return { architecture: d.architecture, info: d.info ?? {} };
  }
  const trainer = file.metadata.segvol;
  if (trainer) {
    // Checkpoints of the first format recorded the CLI's model config only.
    const state = JSON.parse(trainer) as { modelConfig?: ({ preset?: string } & Record<string, unknown>) | null };
    if (state.modelConfig?.preset === 'pyramidNet') {
      const { preset: _preset, ...options } = state.modelConfig;
      return { architecture: { kind: 'preset', preset: 'pyramidNet', options }, info: {} };
    }
  }
  return undefined;
}
