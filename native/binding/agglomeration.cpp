// Bindings of the agglomeration pieces (native/metrics/agglomeration.h): fragments, region
// graphs (as bytes), their agglomeration into lookup tables, relabelling. Inputs are copied
// on the main thread; the work runs on the compute thread and settles a Promise.
#include <napi.h>

#include <algorithm>
#include <array>
#include <string>

#include "../metrics/agglomeration.h"
#include "async.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

namespace {

metrics::Dims shapeArg(const Napi::Value& v, const char* op) {
  auto d = intArrayArg(v, op, "shape");
  if (d.size() != 3 || d[0] < 1 || d[1] < 1 || d[2] < 1) fail(ErrorCode::Shape, std::string(op) + ": expected a shape (D, H, W) of positive sizes");
  return {d[0], d[1], d[2]};
}

std::vector<float> affinitiesArg(const Napi::Value& v, metrics::Dims dims, const char* op) {
  auto aff = typedArrayCopy<Napi::Float32Array, float>(v, napi_float32_array, op, "affinities as a Float32Array");
  if (static_cast<int64_t>(aff.size()) != 3 * dims.size()) {
    fail(ErrorCode::Shape, std::string(op) + ": expected affinities (3, D, H, W) = " + std::to_string(3 * dims.size()) + " values, received " +
                               std::to_string(aff.size()));
  }
  return aff;
}

std::vector<int32_t> idsArg(const Napi::Value& v, int64_t expected, const char* op, const char* what) {
  auto ids = typedArrayCopy<Napi::Int32Array, int32_t>(v, napi_int32_array, op, std::string(what) + " as an Int32Array");
  if (expected >= 0 && static_cast<int64_t>(ids.size()) != expected) {
    fail(ErrorCode::Shape, std::string(op) + ": expected " + what + " of " + std::to_string(expected) + " values, received " + std::to_string(ids.size()));
  }
  return ids;
}

metrics::AgglomerationOptions agglomerationArgs(const Napi::CallbackInfo& info, size_t at, const char* op) {
  metrics::AgglomerationOptions o;
  o.scoring = choiceArg<metrics::Scoring>(info[at], op, "scoring", "scoring ", {{"mean", metrics::Scoring::Mean}, {"quantile", metrics::Scoring::Quantile}});
  o.quantile = static_cast<int>(intArg(info[at + 1], op, "quantile"));
  if (!info[at + 2].IsArray()) fail(ErrorCode::Argument, std::string(op) + ": expected thresholds as an array of numbers");
  Napi::Array t = info[at + 2].As<Napi::Array>();
  for (uint32_t i = 0; i < t.Length(); ++i) o.thresholds.push_back(numberArg(t.Get(i), op, "threshold"));
  return o;
}

Napi::Int32Array int32Out(Napi::Env env, const std::vector<int32_t>& values) {
  Napi::Int32Array out = Napi::Int32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), out.Data());
  return out;
}

Napi::Value int32ListOut(Napi::Env env, const std::vector<std::vector<int32_t>>& lists) {
  Napi::Array out = Napi::Array::New(env, lists.size());
  for (size_t i = 0; i < lists.size(); ++i) out.Set(static_cast<uint32_t>(i), int32Out(env, lists[i]));
  return out;
}

}  // namespace

// agglomerationFragments(aff, shape, low, high) -> Promise<{ fragments, count }>: the watershed's basins, unmerged.
Napi::Value AgglomerationFragments(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "fragments";
    const metrics::Dims dims = shapeArg(info[1], op);
    auto aff = affinitiesArg(info[0], dims, op);
    metrics::WatershedOptions o;
    o.low = static_cast<float>(numberArg(info[2], op, "low"));
    o.high = static_cast<float>(numberArg(info[3], op, "high"));
    o.spanningTree = false;
    return PromiseWorker<metrics::WatershedResult>::start(
        info.Env(), [aff = std::move(aff), dims, o] { return metrics::affinityWatershed(aff.data(), dims, true, o); },
        [](Napi::Env env, metrics::WatershedResult& r) {
          Napi::Object out = Napi::Object::New(env);
          out.Set("fragments", int32Out(env, r.segments));
          out.Set("count", r.count);
          return Napi::Value(out);
        });
  });
}

// agglomerationRegionGraph(fragments, aff, shape, [faceZ, faceY, faceX] (Int32Array or null), withLevels) -> Promise<Uint8Array>
Napi::Value AgglomerationRegionGraph(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "regionGraph";
    const metrics::Dims dims = shapeArg(info[2], op);
    auto fragments = idsArg(info[0], dims.size(), op, "fragments");
    auto aff = affinitiesArg(info[1], dims, op);
    if (!info[3].IsArray() || info[3].As<Napi::Array>().Length() != 3) fail(ErrorCode::Argument, std::string(op) + ": expected faces as [z, y, x]");
    Napi::Array faceArgs = info[3].As<Napi::Array>();
    const int64_t faceSize[3] = {dims.h * dims.w, dims.d * dims.w, dims.d * dims.h};
    const char* faceName[3] = {"the z face", "the y face", "the x face"};
    std::array<std::vector<int32_t>, 3> faces;
    std::array<bool, 3> present{};
    for (uint32_t a = 0; a < 3; ++a) {
      Napi::Value f = faceArgs.Get(a);
      if (f.IsNull() || f.IsUndefined()) continue;
      faces[a] = idsArg(f, faceSize[a], op, faceName[a]);
      present[a] = true;
    }
    const bool withLevels = boolArg(info[4], op, "withLevels");
    return PromiseWorker<std::vector<uint8_t>>::start(
        info.Env(),
        [fragments = std::move(fragments), aff = std::move(aff), faces = std::move(faces), present, dims, withLevels] {
          metrics::BlockFaces f;
          if (present[0]) f.z = faces[0].data();
          if (present[1]) f.y = faces[1].data();
          if (present[2]) f.x = faces[2].data();
          return metrics::serializeRegionGraph(metrics::regionGraph(fragments.data(), aff.data(), dims, f, withLevels));
        },
        [](Napi::Env env, std::vector<uint8_t>& bytes) {
          Napi::Uint8Array out = Napi::Uint8Array::New(env, bytes.size());
          std::copy(bytes.begin(), bytes.end(), out.Data());
          return Napi::Value(out);
        });
  });
}

// agglomerationAgglomerateGraphs(graphs: Uint8Array[], fragmentCount, scoring, quantile, thresholds)
//   -> Promise<Int32Array[]>: per threshold, the segment of fragments 0..fragmentCount (0 -> 0).
Napi::Value AgglomerationAgglomerateGraphs(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "agglomerate";
    if (!info[0].IsArray()) fail(ErrorCode::Argument, std::string(op) + ": expected region graphs as an array of Uint8Array");
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<std::vector<uint8_t>> graphs;
    for (uint32_t i = 0; i < list.Length(); ++i) graphs.push_back(typedArrayCopy<Napi::Uint8Array, uint8_t>(list.Get(i), napi_uint8_array, op, "each region graph as a Uint8Array"));
    const int64_t fragments = intArg(info[1], op, "fragmentCount");
    if (fragments < 0 || fragments > 2147483646) fail(ErrorCode::Argument, std::string(op) + ": expected a fragment count in 0..2147483646, received " + std::to_string(fragments));
    auto options = agglomerationArgs(info, 2, op);
    return PromiseWorker<std::vector<std::vector<int32_t>>>::start(
        info.Env(),
        [graphs = std::move(graphs), fragments, options]() mutable {
          const bool levels = options.scoring == metrics::Scoring::Quantile;
          std::vector<metrics::RegionGraph> parts;
          parts.reserve(graphs.size());
          for (size_t i = 0; i < graphs.size(); ++i) {
            try {
              parts.push_back(metrics::deserializeRegionGraph(graphs[i].data(), graphs[i].size(), levels));
            } catch (const Error& e) {
              fail(e.code(), "graph " + std::to_string(i) + ": " + e.what());  // which one, for the caller to name its file
            }
            std::vector<uint8_t>().swap(graphs[i]);
          }
          metrics::RegionGraph graph = metrics::mergeRegionGraphs(parts);
          std::vector<metrics::RegionGraph>().swap(parts);
          graph.withLevels = levels;
          std::vector<int32_t> nodes(static_cast<size_t>(fragments));
          for (int64_t i = 0; i < fragments; ++i) nodes[i] = static_cast<int32_t>(i + 1);
          auto segments = metrics::agglomerate(graph, nodes, options);
          // Lookup tables indexed by fragment id, 0 (background) first.
          for (auto& s : segments) s.insert(s.begin(), 0);
          return segments;
        },
        [](Napi::Env env, std::vector<std::vector<int32_t>>& tables) { return int32ListOut(env, tables); });
  });
}

// agglomerationAgglomerateVolume(fragments, aff, shape, scoring, quantile, thresholds) -> Promise<Int32Array[]>:
// the whole volume's region graph agglomerated, one segmentation per threshold.
Napi::Value AgglomerationAgglomerateVolume(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "agglomerate";
    const metrics::Dims dims = shapeArg(info[2], op);
    auto fragments = idsArg(info[0], dims.size(), op, "fragments");
    auto aff = affinitiesArg(info[1], dims, op);
    auto options = agglomerationArgs(info, 3, op);
    return PromiseWorker<std::vector<std::vector<int32_t>>>::start(
        info.Env(),
        [fragments = std::move(fragments), aff = std::move(aff), dims, options] {
          const bool levels = options.scoring == metrics::Scoring::Quantile;
          metrics::RegionGraph graph = metrics::regionGraph(fragments.data(), aff.data(), dims, {}, levels);
          std::vector<int32_t> nodes;
          for (int32_t f : fragments) if (f > 0) nodes.push_back(f);
          std::sort(nodes.begin(), nodes.end());
          nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
          auto perNode = metrics::agglomerate(graph, nodes, options);
          std::vector<std::vector<int32_t>> out;
          // Voxel -> node by the run of equal ids (a volume's ids repeat along rows).
          for (const auto& segmentOf : perNode) {
            std::vector<int32_t> s(fragments.size(), 0);
            int32_t lastId = 0, lastSegment = 0;
            for (size_t i = 0; i < fragments.size(); ++i) {
              const int32_t f = fragments[i];
              if (f == 0) continue;
              if (f != lastId) {
                lastId = f;
                lastSegment = segmentOf[std::lower_bound(nodes.begin(), nodes.end(), f) - nodes.begin()];
              }
              s[i] = lastSegment;
            }
            out.push_back(std::move(s));
          }
          return out;
        },
        [](Napi::Env env, std::vector<std::vector<int32_t>>& segmentations) { return int32ListOut(env, segmentations); });
  });
}

// agglomerationRelabel(ids: Int32Array, table: Int32Array) -> Int32Array
Napi::Value AgglomerationRelabel(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "relabel";
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) fail(ErrorCode::Argument, std::string(op) + ": expected ids as an Int32Array");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) fail(ErrorCode::Argument, std::string(op) + ": expected a lookup table as an Int32Array");
    Napi::Int32Array ids = info[0].As<Napi::Int32Array>(), table = info[1].As<Napi::Int32Array>();
    return Napi::Value(int32Out(info.Env(), metrics::relabel(ids.Data(), static_cast<int64_t>(ids.ElementLength()), table.Data(),
                                                             static_cast<int64_t>(table.ElementLength()))));
  });
}

}  // namespace segvol::binding
