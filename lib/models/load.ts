// The model-file loader: a file's architecture rebuilt with the registry's
// builders (every family's presets and layers), then its weights and info.
import { SegvolError } from '../core/errors';
import { readSafetensors } from '../io/safetensors';
import type { ModelBase } from '../nn/model';
import { buildArchitecture, modelDescription, type LoadModelOptions } from '../serialize/model_file';
import { layerBuilders, presetBuilders } from '.';

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
  const model = buildArchitecture(description.architecture, { presets: presetBuilders(), layers: layerBuilders() }, options, `loadModel ${path}`);
  model.loadStateDict(file.tensors, `loadModel ${path}`);
  model.info = description.info;
  return model;
}

export type { LoadModelOptions };
