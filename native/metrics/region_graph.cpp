// Region graphs: the statistics of the voxel edges between fragments (count, fixed-point
// sum, sparse histogram of quantised affinities), their byte form, and their merge.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "../core/error.h"
#include "agglomeration.h"
#include "flat_map.h"

namespace segvol::metrics {
namespace {

uint64_t pairKey(int32_t a, int32_t b) {
  if (a > b) std::swap(a, b);
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string voxelName(int64_t z, int64_t y, int64_t x) {
  return "(" + std::to_string(z) + ", " + std::to_string(y) + ", " + std::to_string(x) + ")";
}

constexpr char kMagic[4] = {'S', 'V', 'R', 'G'};
constexpr uint32_t kFormat = 1;
constexpr size_t kHeader = 32;  // magic, format, flags, reserved (4 bytes each), edges, level entries (8 each)

}  // namespace

void mergeLevels(const uint64_t* p, size_t m, const uint64_t* q, size_t k, std::vector<uint64_t>& out) {
  size_t i = 0, j = 0;
  while (i < m || j < k) {
    if (j == k || (i < m && levelOf(p[i]) < levelOf(q[j]))) {
      out.push_back(p[i++]);
    } else if (i == m || levelOf(q[j]) < levelOf(p[i])) {
      out.push_back(q[j++]);
    } else {
      out.push_back(p[i++] + countOf(q[j++]));
    }
  }
}

RegionGraph regionGraph(const int32_t* fragments, const float* aff, Dims dims, const BlockFaces& faces, bool withLevels) {
  const int64_t n = dims.size();
  const int64_t stride[3] = {dims.h * dims.w, dims.w, 1};
  const char* axisName[3] = {"z", "y", "x"};
  FlatMap<int32_t> edgeOf;
  std::vector<uint64_t> keys;
  std::vector<int64_t> count, sum;
  FlatMap<uint64_t> levelCounts;  // (edge << 8) | level -> voxel edges
  uint64_t lastKey = ~uint64_t{0};
  int32_t last = -1;
  for (int64_t z = 0, v = 0; z < dims.d; ++z) {
    for (int64_t y = 0; y < dims.h; ++y) {
      for (int64_t x = 0; x < dims.w; ++x, ++v) {
        const int32_t f = fragments[v];
        if (f < 0) fail(ErrorCode::Argument, "region graph: expected fragment ids >= 0, received " + std::to_string(f) + " at voxel " + voxelName(z, y, x));
        if (f == 0) continue;
        const int64_t c[3] = {z, y, x};
        for (int axis = 0; axis < 3; ++axis) {
          int32_t g;
          if (c[axis] > 0) {
            g = fragments[v - stride[axis]];
          } else {
            // The predecessor lies in the preceding block: its id on the face, if there is one.
            const int32_t* face = axis == 0 ? faces.z : axis == 1 ? faces.y : faces.x;
            if (!face) continue;
            g = face[axis == 0 ? y * dims.w + x : axis == 1 ? z * dims.w + x : z * dims.h + y];
            if (g < 0) fail(ErrorCode::Argument, "region graph: expected fragment ids >= 0 on the " + std::string(axisName[axis]) + " face, received " + std::to_string(g));
          }
          if (g == 0 || g == f) continue;
          const float a = aff[axis * n + v];
          if (!(a >= 0.0f && a <= 1.0f)) {
            fail(ErrorCode::Argument, "region graph: expected affinities in [0, 1], received " + std::to_string(a) + " on the " + axisName[axis] +
                                          " edge of voxel " + voxelName(z, y, x) + "; affinities are probabilities (a sigmoid output)");
          }
          const uint64_t key = pairKey(f, g);
          if (key != lastKey) {
            auto [edge, inserted] = edgeOf.emplace(key, static_cast<int32_t>(keys.size()));
            if (inserted) {
              keys.push_back(key);
              count.push_back(0);
              sum.push_back(0);
            }
            lastKey = key;
            last = *edge;
          }
          count[last] += 1;
          sum[last] += std::llround(static_cast<double>(a) * kAffinityScale);
          if (withLevels) {
            const int level = std::min(static_cast<int>(a * static_cast<float>(kAffinityLevels)), kAffinityLevels - 1);
            *levelCounts.emplace((static_cast<uint64_t>(last) << 8) | static_cast<uint64_t>(level), 0).first += 1;
          }
        }
      }
    }
  }
  // Sorted by fragment pair, whatever order the voxels met them in.
  std::vector<int32_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t p, int32_t q) { return keys[p] < keys[q]; });
  RegionGraph g;
  g.withLevels = withLevels;
  const size_t edges = keys.size();
  g.a.resize(edges);
  g.b.resize(edges);
  g.count.resize(edges);
  g.sum.resize(edges);
  std::vector<int32_t> position(edges);
  for (size_t i = 0; i < edges; ++i) {
    const int32_t e = order[i];
    position[e] = static_cast<int32_t>(i);
    g.a[i] = static_cast<int32_t>(keys[e] >> 32);
    g.b[i] = static_cast<int32_t>(keys[e] & 0xffffffffu);
    g.count[i] = count[e];
    g.sum[i] = sum[e];
  }
  if (withLevels) {
    std::vector<std::pair<uint64_t, uint64_t>> entries;  // (sorted edge << 8 | level, count)
    entries.reserve(levelCounts.size());
    levelCounts.forEach([&](uint64_t k, uint64_t c) { entries.push_back({(static_cast<uint64_t>(position[k >> 8]) << 8) | (k & 0xffu), c}); });
    std::sort(entries.begin(), entries.end());
    g.levelStart.assign(edges + 1, 0);
    g.levels.reserve(entries.size());
    for (const auto& [k, c] : entries) {
      g.levelStart[(k >> 8) + 1] += 1;
      g.levels.push_back(((k & 0xffu) << 56) | c);
    }
    for (size_t e = 0; e < edges; ++e) g.levelStart[e + 1] += g.levelStart[e];
  }
  return g;
}

std::vector<uint8_t> serializeRegionGraph(const RegionGraph& g) {
  const uint64_t edges = g.edges(), entries = g.withLevels ? g.levels.size() : 0;
  size_t size = kHeader + edges * (4 + 4 + 8 + 8);
  if (g.withLevels) size += (edges + 1) * 8 + entries * 8;
  std::vector<uint8_t> out(size);
  uint8_t* p = out.data();
  auto put = [&p](const void* data, size_t bytes) {
    if (bytes) std::memcpy(p, data, bytes);
    p += bytes;
  };
  const uint32_t flags = g.withLevels ? 1u : 0u, reserved = 0;
  put(kMagic, 4);
  put(&kFormat, 4);
  put(&flags, 4);
  put(&reserved, 4);
  put(&edges, 8);
  put(&entries, 8);
  put(g.a.data(), edges * 4);
  put(g.b.data(), edges * 4);
  put(g.count.data(), edges * 8);
  put(g.sum.data(), edges * 8);
  if (g.withLevels) {
    put(g.levelStart.data(), (edges + 1) * 8);
    put(g.levels.data(), entries * 8);
  }
  return out;
}

RegionGraph deserializeRegionGraph(const uint8_t* data, size_t size, bool withLevels) {
  auto bad = [](const std::string& why) -> void {
    fail(ErrorCode::Argument, "region graph: not a segvol region graph (" + why + "); the block's edge file is damaged: delete it and its done marker, then resume");
  };
  if (size < kHeader || std::memcmp(data, kMagic, 4) != 0) bad("no SVRG header");
  uint32_t format = 0, flags = 0;
  uint64_t edges = 0, entries = 0;
  std::memcpy(&format, data + 4, 4);
  std::memcpy(&flags, data + 8, 4);
  std::memcpy(&edges, data + 16, 8);
  std::memcpy(&entries, data + 24, 8);
  if (format != kFormat) bad("format " + std::to_string(format) + ", this segvol reads format " + std::to_string(kFormat));
  const bool stored = (flags & 1u) != 0;
  if (withLevels && !stored) fail(ErrorCode::Argument, "region graph: quantile scoring needs affinity histograms, and this graph was stored without them");
  const uint64_t limit = size;
  if (edges > limit / 24) bad("edge count " + std::to_string(edges) + " does not fit " + std::to_string(size) + " bytes");
  uint64_t expected = kHeader + edges * 24;
  if (stored) {
    if (entries > limit / 8) bad("too many histogram entries");
    expected += (edges + 1) * 8 + entries * 8;
  }
  if (expected != size) bad(std::to_string(size) + " bytes, expected " + std::to_string(expected));
  RegionGraph g;
  g.withLevels = withLevels;
  g.a.resize(edges);
  g.b.resize(edges);
  g.count.resize(edges);
  g.sum.resize(edges);
  const uint8_t* p = data + kHeader;
  auto take = [&p](void* out, size_t bytes) {
    if (bytes) std::memcpy(out, p, bytes);
    p += bytes;
  };
  take(g.a.data(), edges * 4);
  take(g.b.data(), edges * 4);
  take(g.count.data(), edges * 8);
  take(g.sum.data(), edges * 8);
  for (uint64_t e = 0; e < edges; ++e) {
    if (g.a[e] < 1 || g.b[e] <= g.a[e] || (e > 0 && pairKey(g.a[e - 1], g.b[e - 1]) >= pairKey(g.a[e], g.b[e]))) bad("edges not sorted pairs a < b of ids > 0");
    if (g.count[e] < 1 || g.sum[e] < 0 || static_cast<double>(g.sum[e]) > static_cast<double>(g.count[e]) * kAffinityScale) bad("statistics out of range");
  }
  if (stored && withLevels) {
    g.levelStart.resize(edges + 1);
    g.levels.resize(entries);
    take(g.levelStart.data(), (edges + 1) * 8);
    take(g.levels.data(), entries * 8);
    if (g.levelStart[0] != 0 || g.levelStart[edges] != entries) bad("histogram offsets");
    for (uint64_t e = 0; e < edges; ++e) {
      if (g.levelStart[e + 1] < g.levelStart[e] || g.levelStart[e + 1] - g.levelStart[e] > kAffinityLevels) bad("histogram offsets");
      uint64_t total = 0;
      for (uint64_t i = g.levelStart[e]; i < g.levelStart[e + 1]; ++i) {
        if (countOf(g.levels[i]) == 0 || (i > g.levelStart[e] && levelOf(g.levels[i]) <= levelOf(g.levels[i - 1]))) bad("histogram entries");
        total += countOf(g.levels[i]);
      }
      if (total != static_cast<uint64_t>(g.count[e])) bad("histogram counts");
    }
  }
  return g;
}

RegionGraph mergeRegionGraphs(const std::vector<RegionGraph>& graphs) {
  RegionGraph out;
  out.withLevels = !graphs.empty() && std::all_of(graphs.begin(), graphs.end(), [](const RegionGraph& g) { return g.withLevels; });
  struct Source {
    uint64_t key;
    uint32_t graph;
    uint32_t edge;
  };
  size_t total = 0;
  for (const RegionGraph& g : graphs) total += g.edges();
  std::vector<Source> all;
  all.reserve(total);
  for (size_t i = 0; i < graphs.size(); ++i) {
    for (size_t e = 0; e < graphs[i].edges(); ++e) all.push_back({pairKey(graphs[i].a[e], graphs[i].b[e]), static_cast<uint32_t>(i), static_cast<uint32_t>(e)});
  }
  std::sort(all.begin(), all.end(), [](const Source& p, const Source& q) {
    if (p.key != q.key) return p.key < q.key;
    if (p.graph != q.graph) return p.graph < q.graph;
    return p.edge < q.edge;
  });
  if (out.withLevels) out.levelStart.push_back(0);
  std::vector<uint64_t> merged, scratch;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    int64_t count = 0, sum = 0;
    merged.clear();
    for (; j < all.size() && all[j].key == all[i].key; ++j) {
      const RegionGraph& g = graphs[all[j].graph];
      const size_t e = all[j].edge;
      count += g.count[e];
      sum += g.sum[e];
      if (out.withLevels) {
        scratch.clear();
        mergeLevels(merged.data(), merged.size(), g.levels.data() + g.levelStart[e], g.levelStart[e + 1] - g.levelStart[e], scratch);
        merged.swap(scratch);
      }
    }
    out.a.push_back(static_cast<int32_t>(all[i].key >> 32));
    out.b.push_back(static_cast<int32_t>(all[i].key & 0xffffffffu));
    out.count.push_back(count);
    out.sum.push_back(sum);
    if (out.withLevels) {
      out.levels.insert(out.levels.end(), merged.begin(), merged.end());
      out.levelStart.push_back(out.levels.size());
    }
    i = j;
  }
  return out;
}

}  // namespace segvol::metrics
