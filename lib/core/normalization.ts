// The pre-processing a model records for its inputs (ModelInfo.normalize), named
// once for the model (lib/nn) and the code that applies it (lib/data/preprocess).

/** 'slice': per-slice z-scores; 'mr': the MR pipeline; 'nonzero': per-volume z-scores over non-zero voxels; 'none'. */
export type Normalization = 'slice' | 'mr' | 'nonzero' | 'none';
export const normalizations: readonly Normalization[] = ['slice', 'mr', 'nonzero', 'none'];
