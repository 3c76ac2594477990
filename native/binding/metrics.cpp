// Bindings of the evaluation measures: typed arrays in, plain values out.
#include <napi.h>

#include <cmath>
#include <sstream>
#include <string>
#include <utility>

#include "../metrics/metrics.h"
#include "async.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

namespace {

metrics::Dims dimsArg(const Napi::Value& v, int64_t expected, const char* op) {
  auto d = intArrayArg(v, op, "shape");
  if (d.size() != 3 || d[0] < 1 || d[1] < 1 || d[2] < 1) fail(ErrorCode::Shape, std::string(op) + ": expected a shape (D, H, W) of positive sizes");
  metrics::Dims dims{d[0], d[1], d[2]};
  if (dims.size() != expected) {
    fail(ErrorCode::Shape, std::string(op) + ": the shape holds " + std::to_string(dims.size()) + " voxels, the data " +
                               std::to_string(expected));
  }
  return dims;
}

template <typename T>
void copyIds(const Napi::TypedArray& a, std::vector<int64_t>& out, const char* op, const char* name) {
  const T* p = reinterpret_cast<const T*>(static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
  for (size_t i = 0; i < out.size(); ++i) {
    const double v = static_cast<double>(p[i]);
    if (std::floor(v) != v || v < -2147483648.0 || v > 2147483647.0) {
      std::ostringstream shown;
      shown.precision(17);
      shown << v;  // 0.5, 3000000000, nan: as given, not std::to_string's six decimals
      fail(ErrorCode::Argument, std::string(op) + ": expected integer ids of 32 bits (-2147483648..2147483647) in " + name +
                                    ", received " + shown.str() + " at index " + std::to_string(i) +
                                    "; relabel the segments with integers in that range");
    }
    out[i] = static_cast<int64_t>(v);
  }
}

// Segment or class ids from any numeric typed array.
std::vector<int64_t> idsArg(const Napi::Value& v, const char* op, const char* name) {
  if (!v.IsTypedArray()) fail(ErrorCode::Argument, std::string(op) + ": expected " + name + " as a typed array");
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  std::vector<int64_t> out(a.ElementLength());
  switch (a.TypedArrayType()) {
    case napi_int8_array: copyIds<int8_t>(a, out, op, name); break;
    case napi_uint8_array: case napi_uint8_clamped_array: copyIds<uint8_t>(a, out, op, name); break;
    case napi_int16_array: copyIds<int16_t>(a, out, op, name); break;
    case napi_uint16_array: copyIds<uint16_t>(a, out, op, name); break;
    case napi_int32_array: copyIds<int32_t>(a, out, op, name); break;
    case napi_uint32_array: copyIds<uint32_t>(a, out, op, name); break;
    case napi_float32_array: copyIds<float>(a, out, op, name); break;
    case napi_float64_array: copyIds<double>(a, out, op, name); break;
    default: fail(ErrorCode::Argument, std::string(op) + ": unsupported typed array for " + name);
  }
  return out;
}

std::vector<uint8_t> maskArg(const Napi::Value& v, const char* op, const char* name) {
  std::vector<int64_t> ids = idsArg(v, op, name);
  std::vector<uint8_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = ids[i] != 0;
  return out;
}

const float* floatsArg(const Napi::Value& v, const char* op, const char* name, size_t* length) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    fail(ErrorCode::Argument, std::string(op) + ": expected " + name + " as a Float32Array");
  }
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  *length = a.ElementLength();
  return a.Data();
}

// Two masks of one size (info[0], info[1]) and their (D, H, W) shape (info[2]).
struct MaskPair {
  std::vector<uint8_t> a, b;
  metrics::Dims dims;
};
MaskPair maskPairArg(const Napi::CallbackInfo& info, const char* op, const char* nameA, const char* nameB,
                     const std::string& differ) {
  MaskPair m{maskArg(info[0], op, nameA), maskArg(info[1], op, nameB), {}};
  if (m.a.size() != m.b.size()) fail(ErrorCode::Shape, std::string(op) + ": " + differ + " differ in size");
  m.dims = dimsArg(info[2], static_cast<int64_t>(m.a.size()), op);
  return m;
}

// A Float32Array of one value per voxel (info[0]) and the (D, H, W) shape that holds it (info[1]).
struct FloatVolume {
  const float* data;
  metrics::Dims dims;
};
FloatVolume floatVolumeArg(const Napi::CallbackInfo& info, const char* op, const char* name) {
  size_t n = 0;
  const float* data = floatsArg(info[0], op, name, &n);
  return {data, dimsArg(info[1], static_cast<int64_t>(n), op)};
}

Napi::Int32Array labelsOut(Napi::Env env, const std::vector<int32_t>& labels) {
  Napi::Int32Array out = Napi::Int32Array::New(env, labels.size());
  std::copy(labels.begin(), labels.end(), out.Data());
  return out;
}

}  // namespace

// connectedComponents(foreground, shape, connectivity) -> { labels, count }
Napi::Value ConnectedComponents(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "connectedComponents";
    auto fg = maskArg(info[0], op, "foreground");
    auto dims = dimsArg(info[1], static_cast<int64_t>(fg.size()), op);
    int32_t count = 0;
    auto labels = metrics::connectedComponents(fg, dims, static_cast<int>(intArg(info[2], op, "connectivity")), &count);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("labels", labelsOut(info.Env(), labels));
    o.Set("count", count);
    return Napi::Value(o);
  });
}

// thresholdSegmentation(boundary, shape, threshold, connectivity) -> Int32Array
Napi::Value ThresholdSegmentation(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "segmentByThreshold";
    const FloatVolume b = floatVolumeArg(info, op, "boundary");
    return Napi::Value(labelsOut(info.Env(), metrics::thresholdSegmentation(
        b.data, b.dims, static_cast<float>(numberArg(info[2], op, "threshold")), static_cast<int>(intArg(info[3], op, "connectivity")))));
  });
}

// priorityFlood(boundary, shape, seedThreshold, maskThreshold, minSize, connectivity) -> Int32Array
Napi::Value PriorityFlood(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "priorityFlood";
    const FloatVolume b = floatVolumeArg(info, op, "boundary");
    return Napi::Value(labelsOut(info.Env(), metrics::priorityFlood(
        b.data, b.dims, static_cast<float>(numberArg(info[2], op, "seedThreshold")), static_cast<float>(numberArg(info[3], op, "maskThreshold")),
        intArg(info[4], op, "minSize"), static_cast<int>(intArg(info[5], op, "connectivity")))));
  });
}

// affinityWatershed(aff, shape, threeD, low, high, sizeThresholds [[w, size], ...], minSize)
//   -> { segments, basins, count, treeA, treeB, treeWeight }
Napi::Value AffinityWatershed(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "watershed";
    size_t n = 0;
    const float* aff = floatsArg(info[0], op, "affinities", &n);
    if (n % 3 != 0) fail(ErrorCode::Shape, std::string(op) + ": expected affinities of 3 channels (z, y, x) per voxel, received " + std::to_string(n) + " values");
    auto dims = dimsArg(info[1], static_cast<int64_t>(n / 3), op);
    metrics::WatershedOptions o;
    o.low = static_cast<float>(numberArg(info[3], op, "low"));
    o.high = static_cast<float>(numberArg(info[4], op, "high"));
    if (!info[5].IsArray()) fail(ErrorCode::Argument, std::string(op) + ": expected sizeThresholds as [[weight, size], ...]");
    Napi::Array steps = info[5].As<Napi::Array>();
    for (uint32_t i = 0; i < steps.Length(); ++i) {
      Napi::Value step = steps.Get(i);
      if (!step.IsArray() || step.As<Napi::Array>().Length() != 2) fail(ErrorCode::Argument, std::string(op) + ": expected each size threshold as [weight, size]");
      o.sizeThresholds.push_back({static_cast<float>(numberArg(step.As<Napi::Array>().Get(0u), op, "weight")),
                                  intArg(step.As<Napi::Array>().Get(1u), op, "size")});
    }
    o.minSize = intArg(info[6], op, "minSize");
    auto r = metrics::affinityWatershed(aff, dims, boolArg(info[2], op, "threeD"), o);
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("segments", labelsOut(env, r.segments));
    out.Set("basins", r.basins);
    out.Set("count", r.count);
    Napi::Int32Array a = Napi::Int32Array::New(env, r.tree.size()), b = Napi::Int32Array::New(env, r.tree.size());
    Napi::Float32Array w = Napi::Float32Array::New(env, r.tree.size());
    for (size_t i = 0; i < r.tree.size(); ++i) {
      a[i] = r.tree[i].a;
      b[i] = r.tree[i].b;
      w[i] = r.tree[i].weight;
    }
    out.Set("treeA", a);
    out.Set("treeB", b);
    out.Set("treeWeight", w);
    return Napi::Value(out);
  });
}

// boundaryAffinities(boundary, shape, threeD) -> Float32Array (3, D, H, W)
Napi::Value BoundaryAffinities(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "boundaryAffinities";
    const FloatVolume b = floatVolumeArg(info, op, "boundary");
    auto aff = metrics::boundaryAffinities(b.data, b.dims, boolArg(info[2], op, "threeD"));
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), aff.size());
    std::copy(aff.begin(), aff.end(), out.Data());
    return Napi::Value(out);
  });
}

// cutTree(segments, treeA, treeB, treeWeight, threshold) -> Int32Array
Napi::Value CutTree(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "cutTree";
    auto ids = idsArg(info[0], op, "segments");
    std::vector<int32_t> segments(ids.begin(), ids.end());
    auto a = idsArg(info[1], op, "tree ids"), b = idsArg(info[2], op, "tree ids");
    size_t n = 0;
    const float* w = floatsArg(info[3], op, "tree weights", &n);
    if (a.size() != b.size() || a.size() != n) fail(ErrorCode::Shape, std::string(op) + ": the tree's arrays differ in length");
    std::vector<metrics::RegionEdge> tree(n);
    for (size_t i = 0; i < n; ++i) tree[i] = {static_cast<int32_t>(a[i]), static_cast<int32_t>(b[i]), w[i]};
    return Napi::Value(labelsOut(info.Env(), metrics::cutTree(segments, tree, static_cast<float>(numberArg(info[4], op, "threshold")))));
  });
}

// rand(pred, truth, ignoreTruthZero) -> scores, with { adaptedRandError, precision, recall } per adapted Rand form
Napi::Value Rand(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "rand";
    auto pred = idsArg(info[0], op, "prediction");
    auto truth = idsArg(info[1], op, "truth");
    if (pred.size() != truth.size()) {
      fail(ErrorCode::Shape, std::string(op) + ": prediction has " + std::to_string(pred.size()) + " voxels, truth " + std::to_string(truth.size()));
    }
    auto r = metrics::randScores(pred.data(), truth.data(), static_cast<int64_t>(pred.size()), boolArg(info[2], op, "ignoreTruthZero"));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("vMerge", r.vMerge);
    o.Set("vSplit", r.vSplit);
    o.Set("fScore", r.fScore);
    o.Set("randIndex", r.randIndex);
    for (const auto& [name, form] : {std::pair<const char*, const metrics::AdaptedRand&>{"skimage", r.skimage},
                                     {"snemi3d", r.snemi3d}, {"singletons", r.singletons}}) {
      Napi::Object scores = Napi::Object::New(info.Env());
      scores.Set("adaptedRandError", form.error);
      scores.Set("precision", form.precision);
      scores.Set("recall", form.recall);
      o.Set(name, scores);
    }
    o.Set("viSplit", r.viSplit);
    o.Set("viMerge", r.viMerge);
    return Napi::Value(o);
  });
}

// confusion(pred, truth, classes) -> Float64Array (classes x classes), rows truth
Napi::Value Confusion(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "confusion";
    auto pred = idsArg(info[0], op, "prediction");
    auto truth = idsArg(info[1], op, "truth");
    const int64_t classes = intArg(info[2], op, "classes");
    if (pred.size() != truth.size()) fail(ErrorCode::Shape, std::string(op) + ": prediction and truth differ in size");
    for (size_t i = 0; i < pred.size(); ++i) {
      for (int64_t v : {pred[i], truth[i]}) {
        if (v < 0 || v >= classes) {
          fail(ErrorCode::Argument, std::string(op) + ": expected class ids 0.." + std::to_string(classes - 1) + ", received " +
                                        std::to_string(v) + " at index " + std::to_string(i));
        }
      }
    }
    auto m = metrics::confusionMatrix(pred.data(), truth.data(), static_cast<int64_t>(pred.size()), classes);
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), m.size());
    for (size_t i = 0; i < m.size(); ++i) out[i] = static_cast<double>(m[i]);
    return Napi::Value(out);
  });
}

// pixelError(probability, truth, threshold) / bestPixelError(probability, truth, steps) -> { error, threshold }
Napi::Value PixelErrorFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "pixelError";
    size_t n = 0, m = 0;
    const float* p = floatsArg(info[0], op, "probabilities", &n);
    const float* t = floatsArg(info[1], op, "truth", &m);
    if (n != m) fail(ErrorCode::Shape, std::string(op) + ": probabilities and truth differ in size");
    Napi::Object o = Napi::Object::New(info.Env());
    if (info[2].IsNumber() && info.Length() > 3 && boolArg(info[3], op, "search")) {
      auto best = metrics::bestPixelError(p, t, static_cast<int64_t>(n), static_cast<int>(intArg(info[2], op, "steps")));
      o.Set("error", best.first);
      o.Set("threshold", best.second);
    } else {
      const float threshold = static_cast<float>(numberArg(info[2], op, "threshold"));
      o.Set("error", metrics::pixelError(p, t, static_cast<int64_t>(n), threshold));
      o.Set("threshold", threshold);
    }
    return Napi::Value(o);
  });
}

// surfaceDistances(a, b, shape, spacing[3]) -> Float64Array
Napi::Value SurfaceDistances(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "surfaceDistances";
    const MaskPair m = maskPairArg(info, op, "a", "b", "the masks");
    if (!info[3].IsArray() || info[3].As<Napi::Array>().Length() != 3) fail(ErrorCode::Argument, std::string(op) + ": expected spacing [z, y, x]");
    std::array<double, 3> spacing{};
    for (uint32_t i = 0; i < 3; ++i) {
      spacing[i] = numberArg(info[3].As<Napi::Array>().Get(i), op, "spacing");
      if (!(spacing[i] > 0)) fail(ErrorCode::Argument, std::string(op) + ": expected spacing > 0");
    }
    auto d = metrics::surfaceDistances(m.a, m.b, m.dims, spacing);
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), d.size());
    std::copy(d.begin(), d.end(), out.Data());
    return Napi::Value(out);
  });
}

// warpingError(pred, truth, shape) -> { warpingError, pixelError }
Napi::Value WarpingErrorFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "warpingError";
    const MaskPair m = maskPairArg(info, op, "prediction", "truth", "prediction and truth");
    auto r = metrics::warpingError(m.a.data(), m.b.data(), m.dims);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("warpingError", static_cast<double>(r.warpingErrors) / static_cast<double>(r.voxels));
    o.Set("pixelError", static_cast<double>(r.pixelErrors) / static_cast<double>(r.voxels));
    return Napi::Value(o);
  });
}

namespace {

metrics::PredictedZero predictedZeroArg(const Napi::Value& v, const char* op) {
  const std::string s = stringArg(v, op, "predicted zero");
  if (s == "exclude") return metrics::PredictedZero::Exclude;
  if (s == "singletons") return metrics::PredictedZero::Singletons;
  if (s == "oneSegment") return metrics::PredictedZero::OneSegment;
  fail(ErrorCode::Argument, std::string(op) + ": expected the predicted zeros as 'exclude', 'singletons' or 'oneSegment', received '" + s + "'");
}

// Per slice (foreground, counted, joint2, pred2, truth2) in a Float64Array (D, 5).
void countsOut(const std::vector<metrics::SliceRandCounts>& counts, double* out) {
  for (size_t z = 0; z < counts.size(); ++z) {
    const auto& c = counts[z];
    const double row[5] = {c.foreground, c.counted, c.joint2, c.pred2, c.truth2};
    std::copy(row, row + 5, out + z * 5);
  }
}

}  // namespace

// relabelSlices(ids, shape, connectivity) -> Int32Array: each slice's 2D components of equal ids, 0 kept.
Napi::Value RelabelSlices(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "relabelSlices";
    auto ids = idsArg(info[0], op, "ids");
    auto dims = dimsArg(info[1], static_cast<int64_t>(ids.size()), op);
    return Napi::Value(labelsOut(info.Env(), metrics::relabelSlices(ids.data(), dims, static_cast<int>(intArg(info[2], op, "connectivity")))));
  });
}

// growSegments(labels, boundary, shape, connectivity) -> Int32Array: the 0 voxels joined to the segment that
// reaches them first, growing in order of increasing boundary value.
Napi::Value GrowSegmentsFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "growSegments";
    auto ids = idsArg(info[0], op, "labels");
    size_t n = 0;
    const float* boundary = floatsArg(info[1], op, "boundary", &n);
    if (n != ids.size()) fail(ErrorCode::Shape, std::string(op) + ": labels and boundary map differ in size");
    auto dims = dimsArg(info[2], static_cast<int64_t>(n), op);
    std::vector<int32_t> labels(ids.begin(), ids.end());
    metrics::growSegments(labels, boundary, dims, 2.0f, static_cast<int>(intArg(info[3], op, "connectivity")));
    return Napi::Value(labelsOut(info.Env(), labels));
  });
}

// sliceRandCounts(pred, truth, shape, predictedZero) -> Float64Array (D, 5). pred: 2D segments (ids >= 0).
Napi::Value SliceRandCountsFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "sliceRandCounts";
    auto predIds = idsArg(info[0], op, "prediction");
    auto truth = idsArg(info[1], op, "truth");
    if (predIds.size() != truth.size()) fail(ErrorCode::Shape, std::string(op) + ": prediction and truth differ in size");
    auto dims = dimsArg(info[2], static_cast<int64_t>(truth.size()), op);
    std::vector<int32_t> pred(predIds.begin(), predIds.end());
    auto counts = metrics::sliceRandCounts(pred.data(), truth.data(), dims, predictedZeroArg(info[3], op));
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), counts.size() * 5);
    countsOut(counts, out.Data());
    return Napi::Value(out);
  });
}

// rand2dSweep(boundary, truth, shape, thresholds, { watershed, low, high, sizeThreshold, connectivity, grow, predictedZero })
//   -> Promise<{ counts: Float64Array (T, D, 5), segments: Int32Array (T) }>, computed off the main thread.
Napi::Value Rand2dSweepFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "rand2dSweep";
    size_t n = 0;
    const float* boundaryData = floatsArg(info[0], op, "boundary", &n);
    auto truth = idsArg(info[1], op, "truth");
    if (truth.size() != n) fail(ErrorCode::Shape, std::string(op) + ": boundary map and truth differ in size");
    auto dims = dimsArg(info[2], static_cast<int64_t>(n), op);
    if (!info[3].IsArray()) fail(ErrorCode::Argument, std::string(op) + ": expected thresholds as an array of numbers");
    Napi::Array list = info[3].As<Napi::Array>();
    std::vector<float> thresholds;
    for (uint32_t i = 0; i < list.Length(); ++i) thresholds.push_back(static_cast<float>(numberArg(list.Get(i), op, "threshold")));
    if (!info[4].IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected the method as an object");
    Napi::Object m = info[4].As<Napi::Object>();
    metrics::Rand2dMethod method;
    method.watershed = boolArg(m.Get("watershed"), op, "watershed");
    method.low = static_cast<float>(numberArg(m.Get("low"), op, "low"));
    method.high = static_cast<float>(numberArg(m.Get("high"), op, "high"));
    method.sizeThreshold = intArg(m.Get("sizeThreshold"), op, "sizeThreshold");
    method.connectivity = static_cast<int>(intArg(m.Get("connectivity"), op, "connectivity"));
    method.grow = boolArg(m.Get("grow"), op, "grow");
    method.zero = predictedZeroArg(m.Get("predictedZero"), op);
    // The work owns copies: the typed arrays may change or go once this call returns.
    std::vector<float> boundary(boundaryData, boundaryData + n);
    return Napi::Value(PromiseWorker<metrics::Rand2dSweep>::start(
        info.Env(),
        [boundary = std::move(boundary), truth = std::move(truth), dims, thresholds, method] {
          return metrics::rand2dSweep(boundary.data(), truth.data(), dims, thresholds, method);
        },
        [dims](Napi::Env env, metrics::Rand2dSweep& r) {
          Napi::Float64Array counts = Napi::Float64Array::New(env, r.counts.size() * dims.d * 5);
          for (size_t t = 0; t < r.counts.size(); ++t) countsOut(r.counts[t], counts.Data() + t * dims.d * 5);
          Napi::Int32Array segments = Napi::Int32Array::New(env, r.segments.size());
          std::copy(r.segments.begin(), r.segments.end(), segments.Data());
          Napi::Object out = Napi::Object::New(env);
          out.Set("counts", counts);
          out.Set("segments", segments);
          return Napi::Value(out);
        }));
  });
}

}  // namespace segvol::binding
