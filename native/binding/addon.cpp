// Module entry: exports every binding function under its JS name (the functions
// live in one file per op family, declared in modules.h). Each function only
// converts arguments and results; checks and compute live in native/ops and the
// backends.
#include <napi.h>

#include "convert.h"
#include "modules.h"
#include "saved_handle.h"
#include "tensor_handle.h"

namespace segvol::binding {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  TensorHandle::define(env, exports);
  exports.Set("SavedHandle", SavedHandle::define(env));
  exportFunctions(env, exports, {
      // backends.cpp
      {"backends", Backends},
      {"primitiveCacheStats", PrimitiveCacheStatsFn},
      {"profileStart", ProfileStart},
      {"profileStop", ProfileStop},
      {"setConvMath", SetConvMath},
      {"getConvMath", GetConvMath},
      {"cpuBf16Unsupported", CpuBf16Unsupported},
      {"synchronize", Synchronize},
      {"memoryStats", MemoryStatsFn},
      {"resetPeakMemory", ResetPeakMemory},
      {"releaseCachedMemory", ReleaseCachedMemory},
      {"cachedBytes", CachedBytes},
      {"deviceMemory", DeviceMemoryFn},
      // tensor.cpp
      {"tensorFromArray", TensorFromArray},
      {"tensorFull", TensorFull},
      {"tensorShape", TensorShape},
      {"tensorDevice", TensorDevice},
      {"tensorToArray", TensorToArray},
      {"tensorTo", TensorTo},
      {"tensorReshape", TensorReshape},
      {"tensorDispose", TensorDispose},
      {"tensorIsDisposed", TensorIsDisposed},
      {"firstNonFinite", FirstNonFinite},
      // convolution.cpp
      {"conv", Conv},
      {"convBackward", ConvBackward},
      {"convAsync", ConvAsync},
      {"convBackwardAsync", ConvBackwardAsync},
      {"convTranspose", ConvTranspose},
      {"convTransposeBackward", ConvTransposeBackward},
      {"pixelwise", Pixelwise},
      {"pixelwiseBackward", PixelwiseBackward},
      // pooling.cpp
      {"maxPool", MaxPool},
      {"maxPoolBackward", MaxPoolBackward},
      {"avgPool", AvgPool},
      {"avgPoolBackward", AvgPoolBackward},
      // upsample.cpp
      {"upsample", Upsample},
      {"upsampleBackward", UpsampleBackward},
      // normalization.cpp
      {"batchNorm", BatchNorm},
      {"batchNormBackward", BatchNormBackward},
      // elementwise.cpp
      {"activation", Activation},
      {"activationBackward", ActivationBackward},
      {"add", Add},
      {"mul", Mul},
      {"scale", Scale},
      {"sum", Sum},
      {"clamp", Clamp},
      {"clampBackward", ClampBackward},
      {"roundToPrecision", RoundToPrecision},
      {"distributedStatus", DistributedStatus},
      {"distributedInit", DistributedInit},
      {"distributedAllreduceMean", DistributedAllreduceMean},
      {"distributedBroadcast", DistributedBroadcast},
      {"distributedAllgather", DistributedAllgather},
      {"distributedFinalize", DistributedFinalize},
      {"sumOfSquares", SumOfSquares},
      // softmax.cpp
      {"softmax", Softmax},
      {"softmaxBackward", SoftmaxBackward},
      // layout.cpp
      {"permute", Permute},
      {"flip", Flip},
      {"concat", Concat},
      {"narrow", Narrow},
      {"narrowBackward", NarrowBackward},
      // clstm.cpp
      {"clstmScan", ClstmScan},
      {"clstmScanBackward", ClstmScanBackward},
      {"pyramidLstm", PyramidLstm},
      {"pyramidLstmBackward", PyramidLstmBackward},
      // rnn.cpp
      {"rnn", Rnn},
      {"rnnBackward", RnnBackward},
      // lstm_cell.cpp
      {"lstmCell", LstmCell},
      {"lstmCellBackward", LstmCellBackward},
      // saved_handle.cpp
      {"savedDispose", SavedDispose},
      {"savedBytes", SavedBytes},
      {"savedShare", SavedShare},
      // loss.cpp, optimizer.cpp
      {"loss", Loss},
      {"optimizerUpdate", OptimizerUpdate},
      // metrics.cpp
      {"metricsConnectedComponents", ConnectedComponents},
      {"metricsThresholdSegmentation", ThresholdSegmentation},
      {"metricsPriorityFlood", PriorityFlood},
      {"metricsWatershed", AffinityWatershed},
      {"metricsBoundaryAffinities", BoundaryAffinities},
      {"metricsCutTree", CutTree},
      {"metricsRand", Rand},
      {"metricsConfusion", Confusion},
      {"metricsPixelError", PixelErrorFn},
      {"metricsSurfaceDistances", SurfaceDistances},
      {"metricsWarpingError", WarpingErrorFn},
      {"metricsRelabelSlices", RelabelSlices},
      {"metricsGrowSegments", GrowSegmentsFn},
      {"metricsSliceRandCounts", SliceRandCountsFn},
      {"metricsRand2dSweep", Rand2dSweepFn},
      // agglomeration.cpp
      {"agglomerationFragments", AgglomerationFragments},
      {"agglomerationRegionGraph", AgglomerationRegionGraph},
      {"agglomerationAgglomerateGraphs", AgglomerationAgglomerateGraphs},
      {"agglomerationAgglomerateVolume", AgglomerationAgglomerateVolume},
      {"agglomerationRelabel", AgglomerationRelabel},
  });
  return exports;
}

}  // namespace segvol::binding

static Napi::Object InitSegvol(Napi::Env env, Napi::Object exports) { return segvol::binding::Init(env, exports); }

NODE_API_MODULE(segvol, InitSegvol)
