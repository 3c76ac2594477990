// The watershed of Zlateski & Seung (2015), "Image segmentation by size-dependent
// single linkage clustering of a watershed basin graph", on an affinity graph:
//   1. steepest ascent: each voxel points along its strongest incident edges
//      (weights clipped to `high`, edges below `low` ignored);
//   2. plateau division: voxels of a plateau (joined by edges both ends point along)
//      are redirected, breadth-first, towards the plateau's exits; plateaus
//      without an exit are regional maxima and stay whole;
//   3. basins: the voxels that drain to the same maximum (voxels with no edge of
//      `low` or more are background, 0);
//   4. the region graph: the strongest affinity between each pair of basins;
//   5. size-dependent single linkage: region-graph edges in decreasing weight
//      merge two segments while either is smaller than the size allowed at that
//      weight; then segments below `minSize` become background;
//   6. the maximum spanning tree of the merged segments' region graph: the
//      hierarchy that any threshold cuts into a coarser segmentation.
// Ties are broken by scan order and edge order, so the result is deterministic.
#include <algorithm>
#include <deque>
#include <numeric>
#include <string>
#include <unordered_map>

#include "../core/error.h"
#include "metrics.h"

namespace segvol::metrics {
namespace {

// Edges of voxel v: direction k in 0..5 = (-z, -y, -x, +z, +y, +x). Affinity channel
// a in 0..2 (z, y, x) holds the edge between a voxel and its predecessor along a.
struct Grid {
  Dims d;
  bool threeD;
  const float* aff;
  int64_t stride[3];

  Grid(const float* a, Dims dims, bool useZ) : d(dims), threeD(useZ && dims.d > 1), aff(a) {
    stride[0] = dims.h * dims.w;
    stride[1] = dims.w;
    stride[2] = 1;
  }
  // The neighbour of v along direction k, or -1 outside (or along z in 2D).
  int64_t neighbour(int64_t v, int k) const {
    const int axis = k % 3;
    if (axis == 0 && !threeD) return -1;
    const int64_t z = v / stride[0], y = (v / stride[1]) % d.h, x = v % d.w;
    const int64_t c[3] = {z, y, x}, n[3] = {d.d, d.h, d.w};
    const int64_t to = c[axis] + (k < 3 ? -1 : 1);
    if (to < 0 || to >= n[axis]) return -1;
    return v + (k < 3 ? -stride[axis] : stride[axis]);
  }
  // The affinity of the edge of v along direction k (which must exist).
  float weight(int64_t v, int k) const {
    const int axis = k % 3;
    const int64_t owner = k < 3 ? v : v + stride[axis];  // the edge belongs to its later voxel
    return aff[axis * d.size() + owner];
  }
};

struct UnionFind {
  std::vector<int64_t> parent;
  explicit UnionFind(int64_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int64_t find(int64_t v) {
    while (parent[v] != v) {
      parent[v] = parent[parent[v]];
      v = parent[v];
    }
    return v;
  }
  // Joins keeping the smaller root (deterministic).
  int64_t unite(int64_t a, int64_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return a;
    if (b < a) std::swap(a, b);
    parent[b] = a;
    return a;
  }
};

uint64_t pairKey(int32_t a, int32_t b) {
  if (a > b) std::swap(a, b);
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// The strongest affinity between each pair of differently labelled (non-zero) neighbours.
std::vector<RegionEdge> regionGraph(const Grid& g, const std::vector<int32_t>& labels) {
  std::unordered_map<uint64_t, float> best;
  const int64_t n = g.d.size();
  for (int64_t v = 0; v < n; ++v) {
    if (labels[v] == 0) continue;
    for (int k = 3; k < 6; ++k) {  // each edge once: towards the later voxel
      const int64_t u = g.neighbour(v, k);
      if (u < 0 || labels[u] == 0 || labels[u] == labels[v]) continue;
      const float w = g.weight(v, k);
      auto [it, inserted] = best.emplace(pairKey(labels[v], labels[u]), w);
      if (!inserted && w > it->second) it->second = w;
    }
  }
  std::vector<RegionEdge> edges;
  edges.reserve(best.size());
  for (const auto& [key, w] : best) edges.push_back({static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xffffffffu), w});
  std::sort(edges.begin(), edges.end(), [](const RegionEdge& x, const RegionEdge& y) {
    if (x.weight != y.weight) return x.weight > y.weight;
    if (x.a != y.a) return x.a < y.a;
    return x.b < y.b;
  });
  return edges;
}

// Labels renumbered 1.. in scan order (0 stays 0).
int32_t relabel(std::vector<int32_t>& labels) {
  std::unordered_map<int32_t, int32_t> ids;
  for (int32_t& l : labels) {
    if (l == 0) continue;
    auto [it, inserted] = ids.emplace(l, static_cast<int32_t>(ids.size() + 1));
    l = it->second;
  }
  return static_cast<int32_t>(ids.size());
}

}  // namespace

WatershedResult affinityWatershed(const float* aff, Dims dims, bool threeD, const WatershedOptions& o) {
  if (!(o.low >= 0 && o.low <= o.high && o.high <= 1)) {
    fail(ErrorCode::Argument, "watershed: expected 0 <= low <= high <= 1, received low " + std::to_string(o.low) + ", high " +
                                  std::to_string(o.high));
  }
  const Grid g(aff, dims, threeD);
  const int64_t n = dims.size();
  // 1. Steepest ascent: out[v] holds a bit per direction.
  std::vector<uint8_t> out(n, 0);
  for (int64_t v = 0; v < n; ++v) {
    float m = -1.0f;
    uint8_t bits = 0;
    for (int k = 0; k < 6; ++k) {
      if (g.neighbour(v, k) < 0) continue;
      const float w = std::min(g.weight(v, k), o.high);
      if (w < o.low) continue;
      if (w > m) {
        m = w;
        bits = static_cast<uint8_t>(1u << k);
      } else if (w == m) {
        bits |= static_cast<uint8_t>(1u << k);
      }
    }
    out[v] = bits;
  }
  auto opposite = [](int k) { return (k + 3) % 6; };
  auto pointsBack = [&](int64_t v, int k) {
    const int64_t u = g.neighbour(v, k);
    return u >= 0 && (out[u] >> opposite(k) & 1u);
  };
  // 2. Plateau division. A plateau voxel has an edge both ends point along; an exit
  // is a plateau voxel that also points along a one-way edge.
  std::vector<uint8_t> next(out);
  std::vector<uint8_t> visited(n, 0);
  std::deque<int64_t> queue;
  for (int64_t v = 0; v < n; ++v) {
    bool plateau = false;
    int exit = -1;
    for (int k = 0; k < 6; ++k) {
      if (!(out[v] >> k & 1u)) continue;
      if (pointsBack(v, k)) plateau = true;
      else if (exit < 0) exit = k;
    }
    if (!plateau) {
      if (exit >= 0) next[v] = static_cast<uint8_t>(1u << exit);  // one steepest edge (the first) per voxel
      continue;
    }
    if (exit >= 0) {
      next[v] = static_cast<uint8_t>(1u << exit);
      visited[v] = 1;
      queue.push_back(v);
    }
  }
  while (!queue.empty()) {
    const int64_t v = queue.front();
    queue.pop_front();
    for (int k = 0; k < 6; ++k) {
      if (!(out[v] >> k & 1u) || !pointsBack(v, k)) continue;
      const int64_t u = g.neighbour(v, k);
      if (visited[u]) continue;
      visited[u] = 1;
      next[u] = static_cast<uint8_t>(1u << opposite(k));  // u drains towards v, and so to the exit
      queue.push_back(u);
    }
  }
  // Unvisited plateau voxels are regional maxima: keep their two-way edges only.
  for (int64_t v = 0; v < n; ++v) {
    if (visited[v] || next[v] == 0) continue;
    uint8_t twoWay = 0;
    for (int k = 0; k < 6; ++k) {
      if ((out[v] >> k & 1u) && pointsBack(v, k)) twoWay |= static_cast<uint8_t>(1u << k);
    }
    if (twoWay) next[v] = twoWay;
  }
  // 3. Basins: voxels joined along their remaining edges.
  UnionFind basins(n);
  for (int64_t v = 0; v < n; ++v) {
    for (int k = 0; k < 6; ++k) {
      if (next[v] >> k & 1u) basins.unite(v, g.neighbour(v, k));
    }
  }
  WatershedResult r;
  r.segments.assign(n, 0);
  for (int64_t v = 0; v < n; ++v) {
    if (out[v] != 0) r.segments[v] = static_cast<int32_t>(basins.find(v) + 1);
  }
  relabel(r.segments);
  r.basins = 0;
  for (int32_t l : r.segments) r.basins = std::max(r.basins, l);
  // 4-5. Size-dependent single linkage over the region graph.
  std::vector<int64_t> size(static_cast<size_t>(r.basins) + 1, 0);
  for (int32_t l : r.segments) ++size[l];
  UnionFind segments(static_cast<int64_t>(r.basins) + 1);
  // Without size steps nothing merges: the region graph is not needed.
  const std::vector<RegionEdge> basinGraph = o.sizeThresholds.empty() ? std::vector<RegionEdge>{} : regionGraph(g, r.segments);
  for (const RegionEdge& e : basinGraph) {
    if (e.weight < o.low) break;
    // The size allowed at this weight: the first step (in decreasing weight) the edge reaches.
    int64_t allowed = 0;
    for (const auto& [weight, sizeLimit] : o.sizeThresholds) {
      if (e.weight >= weight) {
        allowed = sizeLimit;
        break;
      }
    }
    const int64_t a = segments.find(e.a), b = segments.find(e.b);
    if (a == b || !(size[a] < allowed || size[b] < allowed)) continue;
    const int64_t root = segments.unite(a, b);
    size[root] = size[a] + size[b];
  }
  for (int32_t& l : r.segments) {
    if (l == 0) continue;
    const int64_t root = segments.find(l);
    l = size[root] < o.minSize ? 0 : static_cast<int32_t>(root);
  }
  r.count = relabel(r.segments);
  // 6. The maximum spanning tree of the merged segments.
  if (!o.spanningTree) return r;
  UnionFind tree(static_cast<int64_t>(r.count) + 1);
  for (const RegionEdge& e : regionGraph(g, r.segments)) {
    if (tree.find(e.a) == tree.find(e.b)) continue;
    tree.unite(e.a, e.b);
    r.tree.push_back(e);
  }
  return r;
}

std::vector<float> boundaryAffinities(const float* boundary, Dims dims, bool threeD) {
  const int64_t n = dims.size();
  std::vector<float> aff(3 * n, 0.0f);
  const int64_t stride[3] = {dims.h * dims.w, dims.w, 1};
  for (int64_t v = 0; v < n; ++v) {
    const int64_t c[3] = {v / stride[0], (v / stride[1]) % dims.h, v % dims.w};
    for (int a = 0; a < 3; ++a) {
      if (c[a] == 0 || (a == 0 && !threeD)) continue;
      // Two voxels are as together as the less boundary-like of them allows.
      aff[a * n + v] = 1.0f - std::max(boundary[v], boundary[v - stride[a]]);
    }
  }
  return aff;
}

std::vector<int32_t> cutTree(const std::vector<int32_t>& segments, const std::vector<RegionEdge>& tree, float threshold) {
  int32_t count = 0;
  for (int32_t l : segments) count = std::max(count, l);
  for (const RegionEdge& e : tree) {
    if (e.a < 1 || e.b < 1 || e.a > count || e.b > count) {
      fail(ErrorCode::Argument, "cutTree: the tree names segment " + std::to_string(std::max(e.a, e.b)) +
                                    " but the segmentation has segments 1.." + std::to_string(count));
    }
  }
  UnionFind join(static_cast<int64_t>(count) + 1);
  for (const RegionEdge& e : tree) {
    if (e.weight >= threshold) join.unite(e.a, e.b);
  }
  std::vector<int32_t> out(segments);
  for (int32_t& l : out) {
    if (l != 0) l = static_cast<int32_t>(join.find(l));
  }
  relabel(out);
  return out;
}

}  // namespace segvol::metrics
