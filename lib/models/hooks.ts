// Installs what models need from the layers above lib/nn (see ModelServices): the
// safetensors reader and writer, and the pre-processing a model's info records.
import { preprocessVolume, preprocessZeroingNonFinite } from '../data/preprocess';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { setModelServices } from '../nn/model';

setModelServices({
  readTensors: (file) => readSafetensors(file).tensors,
  writeTensors: (file, tensors, metadata) => writeSafetensors(file, tensors, metadata),
  preprocess: (data, shape, mode, options) => (options?.nonFinite === 'zero' ? preprocessZeroingNonFinite(data, shape, mode) : preprocessVolume(data, shape, mode)),
});
