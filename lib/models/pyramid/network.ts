// The PyraMiD-LSTM paper's network (Stollenga et al. 2015): PyraMiD-LSTM layers with
// pixel-wise fully connected layers between them, a softmax at the end.
import { describe, SegvolError } from '../../core/errors';
import { checkObject, rejectUnknown } from '../../core/validate';
import { layers } from '../../nn/layers';
import type { LayerBuilder } from '../../nn/layer';
import { sequential, type Sequential } from '../../nn/sequential';
import { pyramidLayers } from './layer';

export interface PyramidNetOptions {
  inChannels: number;
  classes: number;
  /** Hidden units of the PyraMiD-LSTM layers (the paper: 16, 32, 64). */
  hidden?: readonly number[];
  /**
   * Units of the pixel-wise FC + tanh after each but the last PyraMiD-LSTM layer (the paper: 25, 45,
   * the default with the default hidden; with other hidden sizes each FC keeps its layer's width).
   */
  fc?: readonly number[];
  /** Filter size (the paper: 7). */
  kernel?: number;
  seed?: number;
}

export const pyramidPresets = {
  /**
   * The PyraMiD-LSTM paper's network: per stage a PyraMiD-LSTM layer, then a pixel-wise
   * fully connected layer with tanh; the last stage's FC maps to the classes and a softmax
   * follows. Weights start as U(-0.1, 0.1).
   */
  pyramidNet(options: PyramidNetOptions): Sequential {
    checkObject(options, 'pyramidNet', 'options { inChannels, classes, ... }');
    rejectUnknown(options, ['inChannels', 'classes', 'hidden', 'fc', 'kernel', 'seed'], 'pyramidNet');
    const hidden = options.hidden ?? [16, 32, 64];
    // The paper's FC widths go with its hidden sizes; other hidden sizes keep each layer's width (fc[i] = hidden[i]).
    const fc = options.fc ?? (options.hidden ? [] : [25, 45]);
    if (!Array.isArray(hidden) || hidden.length === 0) {
      throw new SegvolError('ERR_ARGUMENT', `pyramidNet: expected hidden as a non-empty list of units per PyraMiD-LSTM layer, received ${describe(hidden)}`);
    }
    if (!Array.isArray(fc) || fc.length > hidden.length - 1) {
      throw new SegvolError('ERR_ARGUMENT', `pyramidNet: expected at most ${hidden.length - 1} fc entries (one between each pair of the ` +
        `${hidden.length} PyraMiD-LSTM layers; the last layer's FC maps to the classes), received ${describe(fc)}`);
    }
    const kernel = options.kernel ?? 7;
    const builders: LayerBuilder[] = [];
    hidden.forEach((units, stage) => {
      builders.push(pyramidLayers.pyramidLstm({ hidden: units, kernel }));
      if (stage < hidden.length - 1) {
        builders.push(layers.pixelwise({ units: fc[stage] ?? units }), layers.tanh());
      } else {
        builders.push(layers.pixelwise({ units: options.classes }));
      }
    });
    builders.push(layers.softmax());
    return sequential(builders, { inChannels: options.inChannels, seed: options.seed ?? 0 })
      .describedAs({ kind: 'preset', preset: 'pyramidNet', options: { ...options } });
  },
};
