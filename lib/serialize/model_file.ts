// Model files: one format for the API and the CLI. A model file is a safetensors
// file (PyTorch reads its weights) whose metadata says how to rebuild the model
// (its architecture: a preset and options, a layer list, or a graph) and how to
// apply it (ModelInfo: pre-processing, channels, class names, spacing, window).
// Trainer checkpoints are model files with the trainer's state beside.
import { describe, SegvolError } from '../core/errors';
import { readSafetensors, type SafetensorsFile } from '../io/safetensors';
import { graph, type GraphNode } from '../nn/graph';
import type { LayerBuilder, LayerSpec } from '../nn/layer';
import { layers } from '../nn/layers';
import { modelFileFormat, type Architecture, type ModelBase, type ModelInfo } from '../nn/model';
import { sequential } from '../nn/sequential';
import { presets } from '../presets';

export interface LoadModelOptions {
  /** Factories for models written as classes (architecture kind 'custom'), by class name. */
  custom?: Record<string, (options: object | undefined) => ModelBase>;
}

function layerFrom(spec: LayerSpec, where: string): LayerBuilder {
  const make = (layers as Record<string, (options: never) => LayerBuilder>)[spec.type];
  if (!make) {
    throw new SegvolError('ERR_FORMAT', `${where}: the layer type '${spec.type}' is unknown to this segvol; the file may come from a newer version`);
  }
  return make(spec.options as never);
}

/** Builds the model an architecture describes (fresh weights). */
export function buildArchitecture(architecture: Architecture, options: LoadModelOptions = {}, where = 'model'): ModelBase {
  switch (architecture.kind) {
    case 'preset': {
      const make = (presets as Record<string, (options: never) => ModelBase>)[architecture.preset];
      if (!make) throw new SegvolError('ERR_FORMAT', `${where}: unknown preset '${architecture.preset}'; known: ${Object.keys(presets).join(', ')}`);
      return make(architecture.options as never);
    }
    case 'sequential':
      return sequential(architecture.layers.map((l, i) => layerFrom(l, `${where}: layers.${i}`)),
        { inChannels: architecture.inChannels, seed: architecture.seed });
    case 'graph':
      return graph({
        inputs: architecture.inputs, seed: architecture.seed, outputs: architecture.outputs,
        nodes: architecture.nodes.map((n) => ('layer' in n ? { name: n.name, layer: layerFrom(n.layer, `${where}: nodes.${n.name}`), input: n.input }
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

/**
 * Rebuilds the model a file describes and loads its weights and info: files written by
 * model.save(), Trainer checkpoints (API or CLI), and checkpoints of earlier segvol versions.
 */
export function loadModel(path: string, options: LoadModelOptions = {}): ModelBase {
  const file = readSafetensors(path);
  const description = modelDescription(file, `loadModel ${path}`);
  if (!description) {
    throw new SegvolError('ERR_FORMAT', `loadModel ${path}: the file holds weights only, without the model's architecture ` +
      '(weights saved with saveWeights, or by another program); build the model as it was built and call model.loadWeights(file)');
  }
  const model = buildArchitecture(description.architecture, options, `loadModel ${path}`);
  model.loadState(file.tensors, `loadModel ${path}`);
  model.info = description.info;
  return model;
}
