// The binding's JS-visible functions, declared per file: one file per op family,
// mirroring native/ops, plus the tensor functions, the backends' status and
// settings, the saved-state functions and the metrics. addon.cpp exports them
// all under their JS names; lib/core/native.ts types them.
#pragma once
#include <napi.h>

namespace segvol::binding {

using Callback = Napi::Value(const Napi::CallbackInfo& info);

// backends.cpp: status, settings, profiling, memory statistics
Callback Backends, PrimitiveCacheStatsFn, Synchronize, SetConvMath, GetConvMath, CpuBf16Unsupported, ProfileStart, ProfileStop,
    MemoryStatsFn, ResetPeakMemory, DeviceMemoryFn, ReleaseCachedMemory, CachedBytes;
// tensor.cpp
Callback TensorFromArray, TensorFull, TensorShape, TensorDevice, TensorToArray, TensorTo, TensorReshape, TensorDispose,
    TensorIsDisposed, FirstNonFinite;
// convolution.cpp (the *Async forms return a Promise)
Callback Conv, ConvBackward, ConvAsync, ConvBackwardAsync, ConvTranspose, ConvTransposeBackward, Pixelwise,
    PixelwiseBackward;
// pooling.cpp
Callback MaxPool, MaxPoolBackward, AvgPool, AvgPoolBackward;
// upsample.cpp
Callback Upsample, UpsampleBackward;
// normalization.cpp
Callback BatchNorm, BatchNormBackward;
// elementwise.cpp
Callback Activation, ActivationBackward, Add, Mul, Scale, Sum, Clamp, ClampBackward, SumOfSquares, RoundToPrecision;
// distributed.cpp: the MPI collectives (Promises)
Callback DistributedStatus, DistributedInit, DistributedAllreduceMean, DistributedBroadcast, DistributedAllgather, DistributedFinalize;
// softmax.cpp
Callback Softmax, SoftmaxBackward;
// layout.cpp
Callback Permute, Flip, Concat, Narrow, NarrowBackward;
// loss.cpp, optimizer.cpp
Callback Loss, OptimizerUpdate;
// clstm.cpp: the C-LSTM scan and the PyraMiD-LSTM layer
Callback ClstmScan, ClstmScanBackward, PyramidLstm, PyramidLstmBackward;
// rnn.cpp
Callback Rnn, RnnBackward;
// lstm_cell.cpp
Callback LstmCell, LstmCellBackward;
// saved_handle.cpp
Callback SavedDispose, SavedShare, SavedBytes;
// metrics.cpp
Callback ConnectedComponents, ThresholdSegmentation, PriorityFlood, AffinityWatershed, BoundaryAffinities, CutTree,
    Rand, Confusion, PixelErrorFn, SurfaceDistances, WarpingErrorFn, RelabelSlices, GrowSegmentsFn, SliceRandCountsFn,
    Rand2dSweepFn;
// agglomeration.cpp
Callback AgglomerationFragments, AgglomerationRegionGraph, AgglomerationAgglomerateGraphs, AgglomerationAgglomerateVolume,
    AgglomerationRelabel;

}  // namespace segvol::binding
